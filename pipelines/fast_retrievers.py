"""The retriever component for FastDocumentStore: one stage (keyword or dense) over the shared store, or over the
asking browser session's own store, found by its workspace id at query time.

The id, not the store, is the run input: Haystack deep-copies run inputs. Chunks from a session's store carry
`meta["private"] = True`, so the page can say which came from the asker's own files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from haystack import Document, component

from pipelines.fast_store import FastDocumentStore
from pipelines.retriever_base import Search, StoreRetriever

StoreLookup = Callable[[str], FastDocumentStore | None]


@dataclass(frozen=True)
class SessionStores:
    """The browser sessions' own stores, by workspace id, and the shared store (`keyword_stats`) whose word counts
    join their BM25 IDF, so that their scores compare with the shared store's: a small private corpus alone would
    give every word a low IDF."""

    lookup: StoreLookup
    keyword_stats: FastDocumentStore | None = None

    def store(self, workspace: str | None) -> FastDocumentStore | None:
        """The session's store, unless it has none or it is empty."""
        store = self.lookup(workspace) if workspace else None
        return store if store is not None and store.count_documents() else None


@component
class FastRetriever(StoreRetriever):
    """Keyword (BM25, bm25s) or dense (cosine) retrieval from a FastDocumentStore, the drop-in counterpart of
    Haystack's InMemoryBM25Retriever / InMemoryEmbeddingRetriever (same options, output `documents`).

    `document_store` is one store, or `SessionStores`: then `workspace` picks the asking session's store per run,
    and a session without one finds nothing.
    """

    store_types = (FastDocumentStore, SessionStores)

    @property
    def private(self) -> bool:
        """Whether it searches the sessions' own stores rather than one store."""
        return isinstance(self.document_store, SessionStores)

    def _store(self, workspace: str | None) -> FastDocumentStore | None:
        return self.document_store.store(workspace) if self.private else self.document_store

    def _found(self, documents: list[Document]) -> list[Document]:
        if not self.private:
            return documents
        return [replace(doc, meta={**doc.meta, "private": True}) for doc in documents]

    def _keyword(self, query: str, workspace: str | None, search: Search) -> list[Document]:
        if (store := self._store(workspace)) is None:
            return []
        stats = None
        if self.private and (shared := self.document_store.keyword_stats) is not None:
            stats = store.bm25_corpus_stats(query) + shared.bm25_corpus_stats(query)
        found = store.bm25_retrieval(
            query, top_k=search.top_k, filters=search.filters, scale_score=search.scale_score, corpus_stats=stats
        )
        return self._found(found)

    def _dense(self, query_embedding: list[float], workspace: str | None, search: Search) -> list[Document]:
        if (store := self._store(workspace)) is None:
            return []
        found = store.embedding_retrieval(
            query_embedding,
            top_k=search.top_k,
            filters=search.filters,
            scale_score=search.scale_score,
            return_embedding=search.return_embedding,
        )
        return self._found(found)
