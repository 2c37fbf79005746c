"""The indexing pipeline: convert → clean → split (embedder tokens) → embed → write."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from haystack import Document, Pipeline
from haystack.components.converters import TextFileToDocument
from haystack.components.preprocessors import DocumentCleaner
from haystack.components.writers import DocumentWriter
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.components.embedders.sentence_transformers import (
    SentenceTransformersDocumentEmbedder,
)

from pipelines.embedder import EmbedderInfo
from pipelines.fast_store import FastDocumentStore
from pipelines.splitter import EmbedderTokenSplitter
from pipelines.store import load_store, new_store, save_store

TEXT_SUFFIXES = (".txt", ".md")
INDEX_FORMAT = "2"


@dataclass(frozen=True)
class ChunkSettings:
    size: int  # tokens of the embedder
    overlap: int = 50


def document_embedder(embedder: EmbedderInfo) -> SentenceTransformersDocumentEmbedder:
    return SentenceTransformersDocumentEmbedder(
        model=embedder.model, local_files_only=embedder.local, progress_bar=False, batch_size=32
    )


class SentenceEmbedder:
    """The retrieval embedding model. Haystack keeps one loaded copy per model and settings, so this shares the
    query pipeline's copy instead of loading another."""

    def __init__(self, info: EmbedderInfo) -> None:
        self._component = document_embedder(info)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, scaled to unit length (cosine is then a dot product, as retrieval scores)."""
        with self._lock:  # warm_up once, whichever page handler asks first
            self._component.warm_up()
        documents = self._component.run(documents=[Document(content=text) for text in texts])["documents"]
        vectors = np.array([document.embedding for document in documents], dtype=np.float64).reshape(len(texts), -1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _splitting_pipeline(embedder: EmbedderInfo, chunks: ChunkSettings) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("converter", TextFileToDocument(store_full_path=False))
    pipeline.add_component("cleaner", DocumentCleaner(remove_empty_lines=False, remove_extra_whitespaces=False))
    pipeline.add_component("splitter", EmbedderTokenSplitter(embedder.model, chunks.size, chunks.overlap))
    pipeline.connect("converter", "cleaner")
    pipeline.connect("cleaner", "splitter")
    return pipeline


def indexing_pipeline(store: FastDocumentStore, embedder: EmbedderInfo, chunks: ChunkSettings) -> Pipeline:
    pipeline = _splitting_pipeline(embedder, chunks)
    pipeline.add_component("embedder", document_embedder(embedder))
    pipeline.add_component("writer", DocumentWriter(store, policy=DuplicatePolicy.OVERWRITE))
    pipeline.connect("splitter", "embedder")
    pipeline.connect("embedder", "writer")
    return pipeline


def knowledge_base_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)


def _cache_key(files: Sequence[Path], embedder: EmbedderInfo, chunks: ChunkSettings) -> str:
    digest = hashlib.sha256(f"{INDEX_FORMAT}|{embedder.name}|{chunks.size}|{chunks.overlap}".encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def load_or_index(
    folder: Path, cache_root: Path, embedder: EmbedderInfo, chunks: ChunkSettings
) -> tuple[FastDocumentStore, bool]:
    """The store for `folder`, from the cache when its files and settings are unchanged.

    Returns the store and whether it was built now.
    """
    files = knowledge_base_files(folder)
    if not files:
        raise FileNotFoundError(f"no .txt or .md files in {folder}")
    cache = cache_root / f"{folder.name}-{_cache_key(files, embedder, chunks)}"
    cached = load_store(cache)
    if cached is not None:
        return cached, False
    store = new_store()
    indexing_pipeline(store, embedder, chunks).run({"converter": {"sources": files}})
    save_store(store, cache)
    return store, True


def chunks_of(store: FastDocumentStore) -> list[tuple[str, str]]:
    """(source file, text) of every chunk, in document then split order."""
    documents = store.filter_documents()
    documents.sort(key=lambda d: (d.meta.get("file_path", ""), d.meta.get("split_id", 0)))
    return [(d.meta.get("file_path", ""), d.content or "") for d in documents]


def split_files(files: Sequence[Path], embedder: EmbedderInfo, chunks: ChunkSettings) -> list[tuple[str, str]]:
    """(source file, text) of the chunks indexing would make of `files`, without embedding them."""
    documents = _splitting_pipeline(embedder, chunks).run({"converter": {"sources": list(files)}})["splitter"]
    ordered = sorted(documents["documents"], key=lambda d: (d.meta.get("file_path", ""), d.meta.get("split_id", 0)))
    return [(d.meta.get("file_path", ""), d.content or "") for d in ordered]


def sources_of(store: FastDocumentStore) -> list[str]:
    """The source files the store holds chunks of."""
    return sorted({d.meta.get("file_path", "") for d in store.filter_documents()} - {""})
