"""Retriever components for FastDocumentStore, drop-in for InMemoryBM25Retriever / InMemoryEmbeddingRetriever.

Same init parameters, inputs and output (`documents`), so a pipeline switches stores by swapping classes.
"""

from __future__ import annotations

from typing import Any

from haystack import Document, component
from haystack.document_stores.types import FilterPolicy

from pipelines.fast_store import FastDocumentStore
from pipelines.retriever_base import StoreRetriever


class _FastRetriever(StoreRetriever):
    store_type = FastDocumentStore


@component
class FastBM25Retriever(_FastRetriever):
    """Keyword retrieval (BM25) from a FastDocumentStore."""

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
    ) -> dict[str, list[Document]]:
        options = self._query_options(filters, top_k, scale_score)
        return {"documents": self.document_store.bm25_retrieval(query=query, **options)}


@component
class FastEmbeddingRetriever(_FastRetriever):
    """Dense retrieval (cosine similarity) from a FastDocumentStore."""

    def __init__(
        self,
        document_store: FastDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        # Explicit base calls: @component rebuilds the class, which breaks zero-argument super().
        StoreRetriever.__init__(self, document_store, filters, top_k, scale_score, filter_policy)
        self.return_embedding = return_embedding

    def _init_parameters(self) -> dict[str, Any]:
        return {**StoreRetriever._init_parameters(self), "return_embedding": self.return_embedding}

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
    ) -> dict[str, list[Document]]:
        options = self._query_options(filters, top_k, scale_score)
        return {
            "documents": self.document_store.embedding_retrieval(
                query_embedding=query_embedding,
                return_embedding=self.return_embedding if return_embedding is None else return_embedding,
                **options,
            )
        }
