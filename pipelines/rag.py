"""The query pipeline of one retrieval mode (`pipelines.retrieval_modes`): per stage, retrieval over the shared store
and the asking session's private store → the better of both → reciprocal rank fusion when the mode has several
stages → optional rerank → per-stage scores → prompt builder, and optionally the engine-backed generator. Only a
mode with a dense stage embeds the question.

The comparison service runs it up to the prompt and streams the arms from the engine itself, so that
closing a stream cancels its generation and retrieval is timed on its own."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from haystack import Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack.components.joiners.document_joiner import JoinMode
from haystack.document_stores.types import DocumentStore
from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder
from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

from adapters.engine import Engine
from adapters.errors import UserError
from adapters.served import ServedEngine
from pipelines.components import EngineGenerator, StageScores
from pipelines.embedder import EmbedderInfo
from pipelines.fast_retrievers import FastRetriever, SessionStores, StoreLookup
from pipelines.fast_store import FastDocumentStore
from pipelines.prompts import rag_prompt_builder
from pipelines.reranker import CANDIDATES_PER_RESULT, OptionalRanker
from pipelines.retrieval_modes import DEFAULT_MODE, FUSED, RetrievalMode, Stage
from pipelines.store import shared_retriever

DEFAULT_TOP_K = 3
EMBEDDER = "text_embedder"


def _no_private_store(workspace: str) -> None:
    return None


def _retrievers(stage: Stage) -> tuple[str, str]:
    """The names of a stage's retrievers: over the shared store, and over the asking session's own."""
    return f"{stage.value}_retriever", f"private_{stage.value}_retriever"


@dataclass(frozen=True)
class QuerySetup:
    """What the query pipeline of every mode is built from (see `query_pipeline`)."""

    store: DocumentStore
    embedder: EmbedderInfo
    engine: Engine | ServedEngine
    top_k: int
    sessions: SessionStores
    reranker: SentenceTransformersSimilarityRanker | None
    generator: bool


@dataclass
class _Family:
    """The pipelines of one setup, one per mode, shared by all of them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    members: dict[RetrievalMode, QueryPipeline] = field(default_factory=dict)


class QueryPipeline(Pipeline):
    """The query pipeline of one retrieval mode. `for_mode` gives the pipeline of another mode from the same stores
    and models, built on first use and kept: a pipeline is cheap to build, and the embedding model they share loads
    once (Sentence Transformers keeps one backend per model)."""

    def __init__(self, setup: QuerySetup, mode: RetrievalMode, family: _Family | None = None) -> None:
        super().__init__()
        self.setup, self.mode = setup, mode
        self._family = family or _Family()
        _add_components(self, setup, mode)
        self._family.members.setdefault(mode, self)  # once built: a failed build is not kept

    def for_mode(self, mode: RetrievalMode | str) -> QueryPipeline:
        mode = RetrievalMode.parse(mode)
        with self._family.lock:  # page handlers run in threads: one pipeline per mode, whoever asks first
            found = self._family.members.get(mode)
            return found if found is not None else QueryPipeline(self.setup, mode, self._family)


def query_pipeline(
    store: DocumentStore,
    embedder: EmbedderInfo,
    engine: Engine | ServedEngine,
    top_k: int = DEFAULT_TOP_K,
    private: StoreLookup = _no_private_store,
    keyword_stats: FastDocumentStore | None = None,
    reranker: SentenceTransformersSimilarityRanker | None = None,
    generator: bool = False,
    mode: RetrievalMode | str = DEFAULT_MODE,
) -> QueryPipeline:
    """`store` is the shared knowledge base (ours or Qdrant); `private` finds a session's own store by its
    workspace id (see `pipeline_inputs`). `keyword_stats` holds the same chunks as `store` in our own store,
    whose word counts let private BM25 scores compare with shared ones (default: `store`, when it is ours).
    `generator` ends the pipeline with `EngineGenerator` (a complete RAG pipeline that answers by itself).
    The pipeline runs `mode`; its `for_mode` gives the other modes' (see `run_query`)."""
    if keyword_stats is None and isinstance(store, FastDocumentStore):
        keyword_stats = store
    setup = QuerySetup(store, embedder, engine, top_k, SessionStores(private, keyword_stats), reranker, generator)
    return QueryPipeline(setup, RetrievalMode.parse(mode))


def _add_components(pipeline: Pipeline, setup: QuerySetup, mode: RetrievalMode) -> None:
    """Only what `mode` runs: every retriever asked is asked for documents, and a keyword mode embeds nothing."""
    top_k = setup.top_k
    if mode.embedded:
        embedder = setup.embedder
        text_embedder = SentenceTransformersTextEmbedder(
            model=embedder.model, local_files_only=embedder.local, progress_bar=False
        )
        pipeline.add_component(EMBEDDER, text_embedder)
    for stage in mode.stages:
        shared, private = _retrievers(stage)
        pipeline.add_component(shared, shared_retriever(setup.store, stage, top_k))
        pipeline.add_component(private, FastRetriever(setup.sessions, stage, top_k=top_k))
        # Per stage, the best of shared and private by score: BM25 scores compare (shared IDF), cosines do.
        pipeline.add_component(stage.value, DocumentJoiner(join_mode=JoinMode.CONCATENATE, top_k=top_k))
        for name in (shared, private):
            if stage.embedded:
                pipeline.connect(f"{EMBEDDER}.embedding", f"{name}.query_embedding")
            pipeline.connect(f"{name}.documents", f"{stage.value}.documents")
    if mode.join is not None:
        pipeline.add_component(FUSED, DocumentJoiner(join_mode=mode.join, top_k=top_k))
        for stage in mode.stages:
            pipeline.connect(f"{stage.value}.documents", f"{FUSED}.documents")
    pipeline.add_component("rerank", OptionalRanker(setup.reranker))
    pipeline.add_component("scores", StageScores(mode.score_keys))
    pipeline.add_component("prompt_builder", rag_prompt_builder())
    pipeline.connect(f"{mode.score_keys[-1]}.documents", "rerank.documents")  # the joined list, or the one stage's
    pipeline.connect("rerank.documents", "scores.ranked")
    for key in mode.score_keys:
        pipeline.connect(f"{key}.documents", f"scores.{key}")
    pipeline.connect("scores.documents", "prompt_builder.documents")
    if setup.generator:
        pipeline.add_component("generator", EngineGenerator(setup.engine))
        pipeline.connect("scores.documents", "generator.documents")
        pipeline.connect("prompt_builder.prompt", "generator.messages")


def pipeline_inputs(
    question: str,
    *,
    top_k: int = DEFAULT_TOP_K,
    mode: RetrievalMode | str = DEFAULT_MODE,
    files: Sequence[str] = (),
    workspace: str | None = None,
    rerank: bool = False,
    **generator: object,
) -> dict[str, dict[str, object]]:
    """The run() data for the query pipeline of `mode`: only its components, the question to every entry point.

    `generator` (rows, decoding, streaming_callback) goes to the generator when the pipeline has one.
    `files` keeps retrieval to those source files; `workspace` adds that session's private store;
    `rerank` has the cross-encoder pick top-k out of more fused candidates.
    """
    mode = RetrievalMode.parse(mode)
    if top_k < 1:
        raise UserError(f"top-k must be at least 1, got {top_k}")
    filters = {"field": "meta.file_path", "operator": "in", "value": list(files)} if files else None
    candidates = top_k * CANDIDATES_PER_RESULT if rerank else top_k
    data: dict[str, dict[str, object]] = {EMBEDDER: {"text": question}} if mode.embedded else {}
    for stage in mode.stages:
        shared, private = _retrievers(stage)
        asked = {"top_k": candidates, "filters": filters, **({} if stage.embedded else {"query": question})}
        data[shared] = asked
        data[private] = {**asked, "workspace": workspace}
    data.update({key: {"top_k": candidates} for key in mode.score_keys})  # the per-stage and fusion joiners
    data["rerank"] = {"query": question, "top_k": top_k, "enabled": rerank}
    data["prompt_builder"] = {"question": question}
    if generator:
        data["generator"] = {"question": question, **generator}
    return data


def run_query(pipeline: Pipeline, question: str, **options: Any) -> dict[str, Any]:
    """Runs the pipeline of the asked mode beside `pipeline` (one `query_pipeline` built) on the question, keeping
    the scored chunks; `options` are `pipeline_inputs`'s."""
    if not isinstance(pipeline, QueryPipeline):
        raise TypeError("expected a pipeline built by query_pipeline")
    mode = RetrievalMode.parse(options.pop("mode", DEFAULT_MODE))
    data = pipeline_inputs(question, mode=mode, **options)
    return pipeline.for_mode(mode).run(data, include_outputs_from={"scores"})
