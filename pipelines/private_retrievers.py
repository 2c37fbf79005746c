"""Retrievers over one browser session's private store, looked up by the session's workspace id at query time.

The id, not the store, is the pipeline input: Haystack deep-copies run inputs. Chunks they return carry
`meta["private"] = True`, so the page can say which came from the asker's own files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from haystack import Document, component

from pipelines.fast_store import FastDocumentStore

StoreLookup = Callable[[str], FastDocumentStore | None]


def _private(documents: list[Document]) -> list[Document]:
    return [replace(doc, meta={**doc.meta, "private": True}) for doc in documents]


def _store_to_ask(lookup: StoreLookup, workspace: str | None, top_k: int) -> FastDocumentStore | None:
    """The session's store, unless there is none, it is empty, or no documents are asked for."""
    store = lookup(workspace) if workspace else None
    return store if store is not None and top_k > 0 and store.count_documents() else None


@component
class PrivateBM25Retriever:
    """BM25 over the session's store. With `shared` given, each word's IDF counts the shared corpus as well, so
    the scores compare with the shared store's: a small private corpus alone would give every word a low IDF."""

    def __init__(self, lookup: StoreLookup, shared: Any = None, top_k: int = 10) -> None:
        self.lookup = lookup
        self.shared = shared if isinstance(shared, FastDocumentStore) else None
        self.top_k = top_k

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        workspace: str | None = None,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[Document]]:
        top_k = self.top_k if top_k is None else top_k
        if (store := _store_to_ask(self.lookup, workspace, top_k)) is None:
            return {"documents": []}
        stats = store.bm25_corpus_stats(query)
        if self.shared is not None:
            stats = stats + self.shared.bm25_corpus_stats(query)
        found = store.bm25_retrieval(query=query, top_k=top_k, filters=filters, corpus_stats=stats)
        return {"documents": _private(found)}


@component
class PrivateEmbeddingRetriever:
    """Cosine similarity over the session's store; cosine scores compare across stores as they are."""

    def __init__(self, lookup: StoreLookup, top_k: int = 10) -> None:
        self.lookup = lookup
        self.top_k = top_k

    @component.output_types(documents=list[Document])
    def run(
        self,
        query_embedding: list[float],
        workspace: str | None = None,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[Document]]:
        top_k = self.top_k if top_k is None else top_k
        if (store := _store_to_ask(self.lookup, workspace, top_k)) is None:
            return {"documents": []}
        found = store.embedding_retrieval(
            query_embedding=query_embedding, top_k=top_k, filters=filters, return_embedding=False
        )
        return {"documents": _private(found)}
