"""The document store and its on-disk cache.

The default is `FastDocumentStore`: embeddings in one contiguous array and keywords in bm25s,
so retrieval stays in milliseconds at 100k chunks (`python -m playground bench retrieval`).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.fast_store import FastDocumentStore


def new_store() -> FastDocumentStore:
    return FastDocumentStore()


def save_store(store: FastDocumentStore, path: Path) -> None:
    """Atomic: the store writes a temporary folder and renames it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    store.save(path)


def load_store(path: Path) -> FastDocumentStore | None:
    return FastDocumentStore.load(path) if path.exists() else None
