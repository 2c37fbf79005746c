"""The query pipeline: embed the question → BM25 + dense retrieval → reciprocal rank fusion →
per-stage scores → prompt builder → the engine-backed generator."""

from __future__ import annotations

from collections.abc import Sequence

from haystack import Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder

from adapters.engine import Engine
from pipelines.components import EngineGenerator, StageScores
from pipelines.embedder import EmbedderInfo
from pipelines.fast_retrievers import FastBM25Retriever, FastEmbeddingRetriever
from pipelines.fast_store import FastDocumentStore
from pipelines.prompts import rag_prompt_builder

DEFAULT_TOP_K = 3


def query_pipeline(
    store: FastDocumentStore, embedder: EmbedderInfo, engine: Engine, top_k: int = DEFAULT_TOP_K
) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component(
        "text_embedder",
        SentenceTransformersTextEmbedder(model=embedder.model, local_files_only=embedder.local, progress_bar=False),
    )
    pipeline.add_component("bm25_retriever", FastBM25Retriever(store, top_k=top_k))
    pipeline.add_component("dense_retriever", FastEmbeddingRetriever(store, top_k=top_k))
    pipeline.add_component("fusion", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=top_k))
    pipeline.add_component("scores", StageScores())
    pipeline.add_component("prompt_builder", rag_prompt_builder())
    pipeline.add_component("generator", EngineGenerator(engine))
    pipeline.connect("text_embedder.embedding", "dense_retriever.query_embedding")
    pipeline.connect("bm25_retriever.documents", "fusion.documents")
    pipeline.connect("dense_retriever.documents", "fusion.documents")
    pipeline.connect("fusion.documents", "scores.fused")
    pipeline.connect("bm25_retriever.documents", "scores.bm25")
    pipeline.connect("dense_retriever.documents", "scores.dense")
    pipeline.connect("scores.documents", "prompt_builder.documents")
    pipeline.connect("scores.documents", "generator.documents")
    pipeline.connect("prompt_builder.prompt", "generator.messages")
    return pipeline


RETRIEVAL_MODES = ("hybrid", "bm25", "dense")


def pipeline_inputs(
    question: str,
    *,
    top_k: int = DEFAULT_TOP_K,
    mode: str = "hybrid",
    files: Sequence[str] = (),
    **generator: object,
) -> dict[str, dict[str, object]]:
    """The run() data for `query_pipeline`: the question goes to every entry point.

    `mode` switches a retriever off by asking it for no documents, so the fusion ranks the
    other alone; `files` keeps retrieval to those source files.
    """
    if mode not in RETRIEVAL_MODES:
        raise ValueError(f"retrieval mode is {mode!r}; expected one of {', '.join(RETRIEVAL_MODES)}")
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, got {top_k}")
    filters = {"field": "meta.file_path", "operator": "in", "value": list(files)} if files else None
    return {
        "text_embedder": {"text": question},
        "bm25_retriever": {"query": question, "top_k": top_k if mode != "dense" else 0, "filters": filters},
        "dense_retriever": {"top_k": top_k if mode != "bm25" else 0, "filters": filters},
        "fusion": {"top_k": top_k},
        "prompt_builder": {"question": question},
        "generator": {"question": question, **generator},
    }
