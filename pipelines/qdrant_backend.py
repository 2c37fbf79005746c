"""Qdrant as the shared document store, through qdrant-haystack, with a drop-in retriever for the fast store's.

Keyword search runs on BM25 sparse vectors computed here: qdrant-haystack's own keyword path embeds with fastembed
models from the hub, which an offline machine cannot fetch. Each document vector holds BM25's saturated term
frequencies under hashed token indices; the collection's IDF modifier supplies the IDF at query time, so a score is
the Lucene BM25 that `FastDocumentStore` (bm25s) computes, apart from the fixed average length below.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import SparseEmbedding
from haystack.document_stores.in_memory.document_store import _DEFAULT_BM25_TOKENIZATION_REGEX
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret
from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever, QdrantSparseEmbeddingRetriever
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore
from haystack_integrations.document_stores.qdrant.converters import SPARSE_VECTORS_NAME
from qdrant_client.http import models

from pipelines.fast_store import BM25_SCALING_FACTOR
from pipelines.retrieval_modes import Stage
from pipelines.retriever_base import Search, StoreRetriever

ENGLISH_STOPWORDS: tuple[str, ...] = tuple(STOPWORDS_EN)
# bm25s's defaults, as the fast store uses them, so scores compare across the two stores.
DEFAULT_K1 = 1.5
DEFAULT_B = 0.75
# Words in a default chunk (254 MiniLM tokens) of the sample knowledge base. A document's vector is computed alone,
# so BM25's corpus-wide average length is a constant; it only shifts length normalisation, not which words match.
DEFAULT_AVG_LEN = 160.0


def open_qdrant_store(
    location: str,
    index: str = "playground",
    embedding_dim: int = 384,
    recreate: bool = False,
    *,
    api_key: Secret | None = None,
) -> QdrantDocumentStore:
    """A store on a Qdrant server (`http://` / `https://` URL) or in local mode (`":memory:"` or a folder).

    Local mode locks its folder: one open store per folder at a time; `close()` releases it.
    Raises ValueError when an existing collection was made without sparse vectors and IDF (use `recreate=True`).
    """
    server = location.startswith(("http://", "https://"))
    if server:
        where = {"url": location}
    elif location == ":memory:":
        where = {"location": location}
    else:
        where = {"path": location}
    store = QdrantDocumentStore(
        **where,
        api_key=api_key,
        index=index,
        embedding_dim=embedding_dim,
        similarity="cosine",
        use_sparse_embeddings=True,
        sparse_idf=True,
        recreate_index=recreate,
        progress_bar=False,
        write_batch_size=256,
        # Local mode ignores payload indexes (and warns); a server uses this one for the per-file filter.
        payload_fields_to_index=[{"field_name": "meta.file_path", "field_schema": "keyword"}] if server else None,
    )
    _check_sparse_idf(store)
    return store


def _check_sparse_idf(store: QdrantDocumentStore) -> None:
    """qdrant-haystack checks the dense settings of an existing collection, not whether its sparse vector has IDF."""
    store.count_documents()  # connects, and creates the collection when it is missing
    client = store._client  # no public accessor; set by the call above
    if client is None:
        raise RuntimeError("qdrant-haystack did not connect")
    sparse = client.get_collection(store.index).config.params.sparse_vectors or {}
    params = sparse.get(SPARSE_VECTORS_NAME)
    if params is None or params.modifier != models.Modifier.IDF:
        store.close()
        raise ValueError(f"Qdrant collection {store.index!r} has no IDF sparse vectors; open it with recreate=True")


class BM25SparseEncoder:
    """Text → BM25 sparse vectors with stable 32-bit token indices (crc32: Python's hash() changes per process)."""

    def __init__(
        self,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        avg_len: float = DEFAULT_AVG_LEN,
        stopwords: Iterable[str] = (),
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1 or avg_len <= 0:
            raise ValueError("BM25 needs k1 >= 0, 0 <= b <= 1 and avg_len > 0")
        self.k1, self.b, self.avg_len = float(k1), float(b), float(avg_len)
        self.stopwords = frozenset(stopwords)
        self._tokenizer = re.compile(_DEFAULT_BM25_TOKENIZATION_REGEX).findall  # the fast store's tokens

    def tokens(self, text: str) -> list[str]:
        found = self._tokenizer(unicodedata.normalize("NFC", text.lower()))
        return [token for token in found if token not in self.stopwords] if self.stopwords else found

    def document(self, text: str) -> SparseEmbedding | None:
        """Per index, tf / (tf + k1·(1 − b + b·len/avg_len)): bm25s's Lucene term weight without the IDF."""
        tokens = self.tokens(text)
        if not tokens:
            return None
        counts = _index_counts(tokens)
        tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        norm = self.k1 * (1 - self.b + self.b * len(tokens) / self.avg_len)
        return SparseEmbedding(indices=list(counts), values=(tf / (tf + norm)).tolist())

    def query(self, text: str) -> SparseEmbedding | None:
        """1 per distinct word: the server multiplies by IDF, so a word repeated in a question counts once."""
        indices = sorted(_index_counts(self.tokens(text)))
        return SparseEmbedding(indices=indices, values=[1.0] * len(indices)) if indices else None


def _index_counts(tokens: list[str]) -> dict[int, int]:
    """Occurrences per token index; colliding words share one entry, as Qdrant needs unique indices."""
    counts: Counter[int] = Counter()
    for token, n in Counter(tokens).items():
        counts[zlib.crc32(token.encode("utf-8"))] += n
    return dict(sorted(counts.items()))


@component
class BM25SparseEmbedder:
    """Sets each document's `sparse_embedding` to its BM25 vector; documents without text keep none."""

    def __init__(
        self,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        avg_len: float = DEFAULT_AVG_LEN,
        stopwords: list[str] | None = None,
    ) -> None:
        self.stopwords = list(stopwords or [])
        self.encoder = BM25SparseEncoder(k1, b, avg_len, self.stopwords)

    def to_dict(self) -> dict[str, Any]:
        encoder = self.encoder
        return default_to_dict(self, k1=encoder.k1, b=encoder.b, avg_len=encoder.avg_len, stopwords=self.stopwords)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25SparseEmbedder:
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        embed = self.encoder.document
        return {"documents": [replace(doc, sparse_embedding=embed(doc.content or "")) for doc in documents]}


_QUERY_ENCODER = BM25SparseEncoder()  # queries need only its tokenizer: the server applies the IDF


@component
class QdrantRetriever(StoreRetriever):
    """Keyword (BM25 sparse vectors) or dense (cosine) retrieval from Qdrant; the same options, inputs and output
    as `FastRetriever` over one store, and scores on the same scales.

    Qdrant stores cosine vectors normalised, so `return_embedding` gives unit-length embeddings.
    """

    store_types = (QdrantDocumentStore,)

    def _prepare(self) -> None:
        if self.stage is Stage.KEYWORD and not self.document_store.use_sparse_embeddings:
            raise ValueError("the store needs sparse embeddings: open it with open_qdrant_store")
        searcher = QdrantSparseEmbeddingRetriever if self.stage is Stage.KEYWORD else QdrantEmbeddingRetriever
        self._searcher = searcher(self.document_store, top_k=self.top_k)

    def _keyword(self, query: str, workspace: str | None, search: Search) -> list[Document]:
        if (sparse := _QUERY_ENCODER.query(query)) is None:
            return []
        # Unscaled from Qdrant, which would scale these as cosines; the fast store's sigmoid instead.
        found = self._searcher.run(
            query_sparse_embedding=sparse, filters=search.filters, top_k=search.top_k, scale_score=False
        )["documents"]
        return [replace(doc, score=_sigmoid(doc.score or 0.0)) for doc in found] if search.scale_score else found

    def _dense(self, query_embedding: list[float], workspace: str | None, search: Search) -> list[Document]:
        # Same cosine scaling as the fast store: (cosine + 1) / 2.
        return self._searcher.run(
            query_embedding=query_embedding,
            filters=search.filters,
            top_k=search.top_k,
            scale_score=search.scale_score,
            return_embedding=search.return_embedding,
        )["documents"]


def _sigmoid(score: float) -> float:
    return float(1 / (1 + np.exp(-score / BM25_SCALING_FACTOR)))


def write_to_qdrant(
    store: QdrantDocumentStore,
    documents: list[Document],
    policy: DuplicatePolicy = DuplicatePolicy.OVERWRITE,
) -> int:
    """Adds BM25 sparse vectors and writes; under OVERWRITE a rewrite replaces each chunk (same id) in place."""
    if not documents:
        return 0  # qdrant-haystack warns on an empty write
    embedded = BM25SparseEmbedder().run(documents=documents)["documents"]
    return store.write_documents(embedded, policy=policy)
