"""The document store and its on-disk cache."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from haystack.document_stores.in_memory import InMemoryDocumentStore


def new_store() -> InMemoryDocumentStore:
    return InMemoryDocumentStore(embedding_similarity_function="cosine")


def save_store(store: InMemoryDocumentStore, path: Path) -> None:
    """Write atomically: a crash never leaves half an index where a whole one was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    os.close(handle)
    try:
        store.save_to_disk(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_store(path: Path) -> InMemoryDocumentStore | None:
    if not path.exists():
        return None
    return InMemoryDocumentStore.load_from_disk(str(path))
