"""Haystack components of the query pipeline: per-stage scores and the engine-backed generator."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from haystack import Document, component
from haystack.dataclasses import ChatMessage, StreamingChunk

from adapters.engine import DecodingSettings, Engine, GenerationRequest, GenerationResult, RowDone
from adapters.served import RowFailed, ServedEngine
from pipelines.prompts import plain_messages, to_dicts
from pipelines.retrieval_modes import RERANK


@component
class StageScores:
    """Records each stage's score on every chunk (`meta["scores"]`: one key per stage input, e.g. bm25, dense,
    fused; rerank when the cross-encoder scored it), in the order of the last stage (`ranked`: the rerank stage's
    output). The stage inputs are declared from `stages` (a retrieval mode's score keys), one list each."""

    def __init__(self, stages: Sequence[str]) -> None:
        self.stages = list(stages)
        component.set_input_types(self, **dict.fromkeys(self.stages, list[Document]))

    @component.output_types(documents=list[Document])
    def run(self, ranked: list[Document], **stages: list[Document]) -> dict[str, list[Document]]:
        by_stage = {name: {d.id: d.score for d in stages.get(name) or []} for name in self.stages}
        annotated = []
        for doc in ranked:
            scores = {stage: found.get(doc.id) for stage, found in by_stage.items()}
            meta = dict(doc.meta)
            if (rerank := meta.pop("rerank_score", None)) is not None:
                scores[RERANK] = rerank
            annotated.append(replace(doc, meta={**meta, "scores": scores}))
        return {"documents": annotated}


@dataclass(frozen=True)
class Row:
    """One answer pane: which adapter answers, and whether it sees the retrieved context."""

    name: str
    adapter: str | None
    with_context: bool


RAG_ONLY = [Row("rag", None, True)]


@component
class EngineGenerator:
    """Sends every row (RAG prompt and/or the bare question, base or adapter) as ONE batched engine call.

    Streams through `streaming_callback`: first a chunk with `meta["event"] == "retrieved"`
    carrying the documents, then text deltas with `meta["row"]`, then one chunk per row with
    `finish_reason` and `meta["result"]` (its timings and token counts).
    """

    def __init__(self, engine: Engine | ServedEngine, decoding: DecodingSettings = DecodingSettings()) -> None:
        self.engine = engine
        self.decoding = decoding

    @component.output_types(replies=list[ChatMessage], results=dict, generation_started=float)
    def run(
        self,
        messages: list[ChatMessage],
        question: str,
        documents: list[Document] | None = None,
        rows: list[Row] | None = None,
        decoding: DecodingSettings | None = None,
        streaming_callback: Callable[[StreamingChunk], None] | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        rows = rows or RAG_ONLY
        emit = streaming_callback or (lambda chunk: None)
        emit(StreamingChunk(content="", meta={"event": "retrieved", "documents": documents or []}))
        context_messages = to_dicts(messages)
        requests = [
            GenerationRequest(context_messages if row.with_context else plain_messages(question), row.adapter)
            for row in rows
        ]
        results: dict[str, GenerationResult] = {}
        for event in self.engine.stream(requests, decoding or self.decoding):
            row = rows[event.row]
            if isinstance(event, RowFailed):  # a served generator's arm that the server refused
                raise event.error
            if isinstance(event, RowDone):
                results[row.name] = event.result
                meta = {"row": row.name, "result": asdict(event.result)}
                emit(StreamingChunk(content="", meta=meta, index=event.row, finish_reason=event.result.finish_reason))
            else:
                emit(StreamingChunk(content=event.text, meta={"row": row.name}, index=event.row))
        replies = [
            ChatMessage.from_assistant(results[row.name].text, meta={"row": row.name, **asdict(results[row.name])})
            for row in rows
        ]
        return {"replies": replies, "results": results, "generation_started": started}
