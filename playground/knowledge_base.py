"""The persistent knowledge base under PLAYGROUND_HOME: files added with `python -m playground index`.

It is shared by everyone who uses this installation, next to the read-only sample knowledge
base; the page retrieves from both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from adapters.errors import UserError
from pipelines.embedder import EmbedderInfo, resolve_embedder
from pipelines.fast_store import FastDocumentStore
from pipelines.indexing import ChunkSettings
from pipelines.ingest import FileReport, Progress, ingest_files
from pipelines.store import load_store, new_store, save_store
from playground.config import Settings


def knowledge_base_path(settings: Settings) -> Path:
    return settings.home / "indexes" / "knowledge-base"


def chunk_settings(settings: Settings, embedder: EmbedderInfo) -> ChunkSettings:
    return ChunkSettings(settings.chunk_size or embedder.max_chunk_tokens, settings.chunk_overlap)


def expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given, and the files inside given folders (sorted, hidden ones left out)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.parts)
            )
        else:
            files.append(path)
    return files


def index_files(settings: Settings, paths: Sequence[Path], progress: Progress | None = None) -> list[FileReport]:
    """Add files to the persistent knowledge base; saved only when something new was indexed."""
    embedder = resolve_embedder(settings.embedder or None)
    target = knowledge_base_path(settings)
    store = load_store(target) or new_store()
    reports = ingest_files(expand(paths), store, embedder, chunk_settings(settings, embedder), progress=progress)
    if any(r.status == "indexed" for r in reports):
        save_store(store, target)
    return reports


def add_knowledge_base(settings: Settings, store: FastDocumentStore) -> int:
    """Copy the persistent knowledge base's chunks into `store` (in memory); returns how many."""
    saved = load_store(knowledge_base_path(settings))
    if saved is None:
        return 0
    documents = saved.filter_documents()
    store.write_documents(documents)
    return len(documents)


def knowledge_base_files(settings: Settings) -> dict[str, int]:
    """The files added with `index`, each with its chunks."""
    return _file_counts(load_store(knowledge_base_path(settings)))


def _file_counts(store: FastDocumentStore | None) -> dict[str, int]:
    found = Counter(str(d.meta.get("file_path", "")) for d in store.filter_documents()) if store is not None else {}
    return dict(sorted(found.items()))


def delete_file(settings: Settings, name: str) -> int:
    """Removes a file's chunks from the persistent knowledge base; returns how many went."""
    from playground.workspaces import chunks_of_file

    target = knowledge_base_path(settings)
    store = load_store(target)
    chunks = chunks_of_file(store, name) if store is not None else []
    if not chunks:
        known = ", ".join(_file_counts(store)) or "none"
        raise UserError(f"{name} is not in the knowledge base under {settings.home} (its files: {known}).")
    store.delete_documents([chunk.id for chunk in chunks])
    save_store(store, target)
    return len(chunks)
