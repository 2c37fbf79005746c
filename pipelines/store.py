"""The document store, its on-disk cache, and the retrievers that fit it.

The default is `FastDocumentStore`: embeddings in one contiguous array and keywords in bm25s,
so retrieval stays in milliseconds at 100k chunks (`python -m playground bench retrieval`).
A Qdrant server takes over the shared knowledge base with `PLAYGROUND_DOCUMENT_STORE=qdrant`.
"""

from __future__ import annotations

from pathlib import Path

from haystack.document_stores.types import DocumentStore

from pipelines.fast_retrievers import FastRetriever
from pipelines.fast_store import FastDocumentStore
from pipelines.retrieval_modes import Stage
from pipelines.retriever_base import StoreRetriever

STORE_KINDS = ("fast", "qdrant")


def new_store() -> FastDocumentStore:
    return FastDocumentStore()


def save_store(store: FastDocumentStore, path: Path) -> None:
    """Atomic: the store writes a temporary folder and renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    store.save(path)


def load_store(path: Path) -> FastDocumentStore | None:
    return FastDocumentStore.load(path) if path.exists() else None


def shared_retriever(store: DocumentStore, stage: Stage, top_k: int) -> StoreRetriever:
    """The retriever component for one stage over `store`, ours or Qdrant; every kind takes the same run() inputs."""
    if isinstance(store, FastDocumentStore):
        return FastRetriever(store, stage, top_k=top_k)
    from pipelines.qdrant_backend import QdrantRetriever

    return QdrantRetriever(store, stage, top_k=top_k)  # type: ignore[arg-type]


def copy_to_qdrant(source: FastDocumentStore, location: str) -> DocumentStore:
    """A Qdrant store at `location` (server URL, folder or ":memory:") holding every chunk of `source`.

    Writing is idempotent (chunk ids are content hashes), so each replica of the app can sync at start.
    """
    from pipelines.qdrant_backend import open_qdrant_store, write_to_qdrant

    documents = source.filter_documents()
    dims = {len(d.embedding) for d in documents if d.embedding is not None}
    qdrant = open_qdrant_store(location, embedding_dim=dims.pop() if len(dims) == 1 else 384)
    write_to_qdrant(qdrant, documents)
    return qdrant
