"""The comparison service: one question → RAG, fine-tuned and hybrid answers, streamed side by side."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from haystack.dataclasses import StreamingChunk

from pipelines.components import Row
from pipelines.indexing import sources_of
from pipelines.rag import pipeline_inputs
from playground.highlight import used_spans
from playground.metrics import summary
from playground.runtime import ModelInfo, Runtime

ROW_NAMES = ("rag", "finetuned", "hybrid")
MAX_QUESTION_CHARS = 2000


@dataclass(frozen=True)
class CompareOptions:
    hybrid: bool = True
    max_new_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    top_k: int | None = None  # None: the configured default
    retrieval: str = "hybrid"  # hybrid (BM25 + dense, fused), bm25 or dense
    files: tuple[str, ...] = ()  # retrieve only from these source files; empty: all
    workspace: str | None = None  # the asking session's private workspace, retrieved from as well
    rerank: bool = False  # a cross-encoder reorders the fused candidates (when one is loaded)
    adapter: str | None = None  # which LoRA adapter answers in the fine-tuned and hybrid panes; None: the default


@dataclass
class Comparison:
    """The comparison so far; `done` once every row has finished."""

    question: str
    model: ModelInfo
    rows: list[str]
    decoding: dict[str, Any]
    retrieval: dict[str, Any] = field(default_factory=dict)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    retrieval_s: float | None = None
    total_s: float | None = None
    done: bool = False

    @property
    def summary(self) -> str:
        return summary(self.answers) if self.done else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "model": {
                "base": self.model.base,
                "source": self.model.source,
                "adapter": self.model.adapter,
                "note": self.model.note,
            },
            "chunks": self.chunks,
            "answers": {name: self.answers.get(name) for name in ROW_NAMES},
            "summary": self.summary,
            "retrieval_s": self.retrieval_s,
            "total_s": self.total_s,
            "decoding": self.decoding,
            "retrieval": self.retrieval,
        }


def _chunk_json(document: Any) -> dict[str, Any]:
    scores = document.meta.get("scores", {})
    return {
        "source": document.meta.get("file_path", ""),
        "content": document.content or "",
        "score": document.score,
        "scores": scores,
        "private": bool(document.meta.get("private")),  # from the asking session's own uploads
    }


_ANSWER_FIELDS = ("text", "latency_s", "ttft_s", "prompt_tokens", "completion_tokens", "tokens_per_s", "finish_reason")


def _mark_used(state: Comparison) -> None:
    """Each chunk's spans that the answers which read it (RAG, hybrid) repeat, for highlighting."""
    readers = [state.texts[name] for name in ("rag", "hybrid") if name in state.texts]
    for chunk in state.chunks:
        chunk["used"] = [list(span) for span in used_spans(chunk["content"], readers)]


class CompareService:
    def __init__(self, runtime: Runtime, attach: Callable[[str], None] | None = None) -> None:
        """`attach(name)` loads a registered adapter into the engine when a question asks for it."""
        self.runtime = runtime
        self.attach = attach

    def sources(self, workspace: str | None = None) -> list[str]:
        """The files retrieval can draw from, for the file filter: shared ones and the session's own."""
        private = self.runtime.workspaces.store(workspace) if workspace else None
        return sorted(set(self.runtime.shared_sources) | set(sources_of(private) if private else ()))

    def rows(self, options: CompareOptions) -> list[Row]:
        adapter = options.adapter or self.runtime.model.adapter
        if adapter and adapter not in self.runtime.engine.adapters:
            if self.attach is None:
                raise ValueError(f"The adapter {adapter!r} is not loaded.")
            self.attach(adapter)
        rows = [Row("rag", None, True)]
        if adapter:
            rows.append(Row("finetuned", adapter, False))
            if options.hybrid:
                rows.append(Row("hybrid", adapter, True))
        return rows

    def compare(self, question: str, options: CompareOptions = CompareOptions()) -> Comparison:
        *_, final = self.stream(question, options)
        return final

    def stream(self, question: str, options: CompareOptions = CompareOptions()) -> Iterator[Comparison]:
        """Yield the comparison after every retrieved-documents event, text delta and finished row."""
        question = (question or "").strip()
        if not question:
            raise ValueError("Type a question first.")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValueError(f"The question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}.")
        if options.rerank and not self.runtime.reranker.available:
            raise ValueError(f"No reranker model is loaded: {self.runtime.reranker.note}.")
        rows = self.rows(options)
        decoding = self.runtime.decoding(
            max_new_tokens=options.max_new_tokens, temperature=options.temperature, seed=options.seed
        )
        retrieval = {
            "top_k": options.top_k or self.runtime.settings.top_k,
            "mode": options.retrieval,
            "files": list(options.files),
            "rerank": options.rerank,
        }
        events: queue.Queue = queue.Queue()
        data = pipeline_inputs(
            question,
            **retrieval,
            workspace=options.workspace,
            rows=rows,
            decoding=decoding,
            streaming_callback=events.put,
        )
        model = replace(self.runtime.model, adapter=next((r.adapter for r in rows if r.adapter), None))
        state = Comparison(question, model, [r.name for r in rows], vars(decoding).copy(), retrieval)
        state.texts = {r.name: "" for r in rows}
        done = object()
        started = time.perf_counter()

        def work() -> None:
            try:
                result = self.runtime.pipeline.run(data)
                events.put(result)
            except BaseException as error:  # re-raised on the consuming side
                events.put(error)
            finally:
                events.put(done)

        threading.Thread(target=work, name="compare", daemon=True).start()
        while (event := events.get()) is not done:
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, StreamingChunk):
                self._apply(state, event, started)
                yield state
            elif isinstance(event, dict):  # the pipeline's final outputs
                state.total_s = time.perf_counter() - started
                _mark_used(state)
                state.done = True
        yield state

    @staticmethod
    def _apply(state: Comparison, chunk: StreamingChunk, started: float) -> None:
        if chunk.meta.get("event") == "retrieved":
            state.retrieval_s = time.perf_counter() - started
            state.chunks = [_chunk_json(d) for d in chunk.meta["documents"]]
            return
        row = chunk.meta["row"]
        if chunk.finish_reason is not None:
            result = chunk.meta["result"]
            state.answers[row] = {k: result[k] for k in _ANSWER_FIELDS}
            state.texts[row] = result["text"]
        else:
            state.texts[row] += chunk.content
