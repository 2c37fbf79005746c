"""The query pipeline: embed the question → BM25 + dense retrieval over the shared store and the asking
session's private store → per stage, the better of both → reciprocal rank fusion → per-stage scores →
prompt builder, and optionally the engine-backed generator.

The comparison service runs it up to the prompt and streams the arms from the engine itself, so that
closing a stream cancels its generation and retrieval is timed on its own."""

from __future__ import annotations

from collections.abc import Sequence

from haystack import Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack.document_stores.types import DocumentStore
from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder
from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

from adapters.engine import Engine
from adapters.errors import UserError
from pipelines.components import EngineGenerator, StageScores
from pipelines.embedder import EmbedderInfo
from pipelines.fast_store import FastDocumentStore
from pipelines.private_retrievers import PrivateBM25Retriever, PrivateEmbeddingRetriever, StoreLookup
from pipelines.prompts import rag_prompt_builder
from pipelines.reranker import CANDIDATES_PER_RESULT, OptionalRanker
from pipelines.store import shared_retrievers

DEFAULT_TOP_K = 3


def _no_private_store(workspace: str) -> None:
    return None


def query_pipeline(
    store: DocumentStore,
    embedder: EmbedderInfo,
    engine: Engine,
    top_k: int = DEFAULT_TOP_K,
    private: StoreLookup = _no_private_store,
    keyword_stats: FastDocumentStore | None = None,
    reranker: SentenceTransformersSimilarityRanker | None = None,
    generator: bool = False,
) -> Pipeline:
    """`store` is the shared knowledge base (ours or Qdrant); `private` finds a session's own store by its
    workspace id (see `pipeline_inputs`). `keyword_stats` holds the same chunks as `store` in our own store,
    whose word counts let private BM25 scores compare with shared ones (default: `store`, when it is ours).
    `generator` ends the pipeline with `EngineGenerator` (a complete RAG pipeline that answers by itself)."""
    pipeline = Pipeline()
    pipeline.add_component(
        "text_embedder",
        SentenceTransformersTextEmbedder(model=embedder.model, local_files_only=embedder.local, progress_bar=False),
    )
    bm25_retriever, dense_retriever = shared_retrievers(store, top_k)
    pipeline.add_component("bm25_retriever", bm25_retriever)
    pipeline.add_component("dense_retriever", dense_retriever)
    pipeline.add_component(
        "private_bm25_retriever", PrivateBM25Retriever(private, shared=keyword_stats or store, top_k=top_k)
    )
    pipeline.add_component("private_dense_retriever", PrivateEmbeddingRetriever(private, top_k=top_k))
    # Per stage, the best of shared and private by score: BM25 scores compare (shared IDF), cosines do.
    pipeline.add_component("bm25", DocumentJoiner(join_mode="concatenate", top_k=top_k))
    pipeline.add_component("dense", DocumentJoiner(join_mode="concatenate", top_k=top_k))
    pipeline.add_component("fusion", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=top_k))
    pipeline.add_component("rerank", OptionalRanker(reranker))
    pipeline.add_component("scores", StageScores())
    pipeline.add_component("prompt_builder", rag_prompt_builder())
    pipeline.connect("text_embedder.embedding", "dense_retriever.query_embedding")
    pipeline.connect("text_embedder.embedding", "private_dense_retriever.query_embedding")
    pipeline.connect("bm25_retriever.documents", "bm25.documents")
    pipeline.connect("private_bm25_retriever.documents", "bm25.documents")
    pipeline.connect("dense_retriever.documents", "dense.documents")
    pipeline.connect("private_dense_retriever.documents", "dense.documents")
    pipeline.connect("bm25.documents", "fusion.documents")
    pipeline.connect("dense.documents", "fusion.documents")
    pipeline.connect("fusion.documents", "rerank.documents")
    pipeline.connect("rerank.documents", "scores.ranked")
    pipeline.connect("fusion.documents", "scores.fused")
    pipeline.connect("bm25.documents", "scores.bm25")
    pipeline.connect("dense.documents", "scores.dense")
    pipeline.connect("scores.documents", "prompt_builder.documents")
    if generator:
        pipeline.add_component("generator", EngineGenerator(engine))
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
    workspace: str | None = None,
    rerank: bool = False,
    **generator: object,
) -> dict[str, dict[str, object]]:
    """The run() data for `query_pipeline`: the question goes to every entry point.

    `generator` (rows, decoding, streaming_callback) goes to the generator when the pipeline has one.
    `mode` switches a retriever off by asking it for no documents, so the fusion ranks the
    other alone; `files` keeps retrieval to those source files; `workspace` adds that session's
    private store; `rerank` has the cross-encoder pick top-k out of more fused candidates.
    """
    if mode not in RETRIEVAL_MODES:
        raise UserError(f"retrieval mode is {mode!r}; expected one of {', '.join(RETRIEVAL_MODES)}")
    if top_k < 1:
        raise UserError(f"top-k must be at least 1, got {top_k}")
    filters = {"field": "meta.file_path", "operator": "in", "value": list(files)} if files else None
    candidates = top_k * CANDIDATES_PER_RESULT if rerank else top_k
    bm25_k = candidates if mode != "dense" else 0
    dense_k = candidates if mode != "bm25" else 0
    return {
        "text_embedder": {"text": question},
        "bm25_retriever": {"query": question, "top_k": bm25_k, "filters": filters},
        "dense_retriever": {"top_k": dense_k, "filters": filters},
        "private_bm25_retriever": {"query": question, "top_k": bm25_k, "filters": filters, "workspace": workspace},
        "private_dense_retriever": {"top_k": dense_k, "filters": filters, "workspace": workspace},
        "bm25": {"top_k": candidates},
        "dense": {"top_k": candidates},
        "fusion": {"top_k": candidates},
        "rerank": {"query": question, "top_k": top_k, "enabled": rerank},
        "prompt_builder": {"question": question},
        **({"generator": {"question": question, **generator}} if generator else {}),
    }
