"""Retriever components for FastDocumentStore, drop-in for InMemoryBM25Retriever / InMemoryEmbeddingRetriever.

Same init parameters, inputs and output (`documents`), so a pipeline switches stores by swapping classes.
"""

from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy

from pipelines.fast_store import FastDocumentStore


class _FastRetriever:
    """What both retrievers share: the store, default filters, top_k, score scaling, filter policy."""

    def __init__(
        self,
        document_store: FastDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, FastDocumentStore):
            raise TypeError("document_store must be an instance of FastDocumentStore")
        if top_k <= 0:
            raise ValueError(f"top_k must be greater than 0, but got {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.scale_score = scale_score
        self.filter_policy = filter_policy

    def _init_parameters(self) -> dict[str, Any]:
        return {
            "document_store": self.document_store,
            "filters": self.filters,
            "top_k": self.top_k,
            "scale_score": self.scale_score,
            "filter_policy": self.filter_policy.value,
        }

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        init_params = dict(data.get("init_parameters", {}))  # a copy: the caller's dict stays serialised
        if "filter_policy" in init_params:
            init_params["filter_policy"] = FilterPolicy.from_str(init_params["filter_policy"])
        return default_from_dict(cls, {**data, "init_parameters": init_params})

    def _query_options(self, filters: dict[str, Any] | None, top_k: int | None, scale_score: bool | None) -> dict:
        top_k = self.top_k if top_k is None else top_k
        if top_k < 0:
            raise ValueError(f"top_k must be greater than or equal to 0, but got {top_k}")
        return {
            "top_k": top_k,
            "filters": apply_filter_policy(self.filter_policy, self.filters, filters),
            "scale_score": self.scale_score if scale_score is None else scale_score,
        }


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
        _FastRetriever.__init__(self, document_store, filters, top_k, scale_score, filter_policy)
        self.return_embedding = return_embedding

    def _init_parameters(self) -> dict[str, Any]:
        return {**_FastRetriever._init_parameters(self), "return_embedding": self.return_embedding}

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
