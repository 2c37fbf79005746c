"""An embedded document store for 100k+ chunks: one float32 matrix for dense search, a bm25s index for keywords.

Rows are append-only: a document keeps its row until it is deleted (the row is then marked dead) and dead rows
are dropped in bulk by `_compact`. Row order is insertion order, so `filter_documents` lists documents the way
`InMemoryDocumentStore` does.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
from haystack import Document, default_from_dict, default_to_dict
from haystack.document_stores.errors import DocumentStoreError, DuplicateDocumentError
from haystack.document_stores.in_memory.document_store import _DEFAULT_BM25_TOKENIZATION_REGEX
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils.filters import _looks_like_iso_date, document_matches_filter

BM25_SCALING_FACTOR = 8  # as InMemoryDocumentStore, so scaled scores mean the same in both stores
BM25_METHODS = ("lucene", "robertson", "atire")  # bm25s variants whose score is 0 when no query term occurs
SAVE_FORMAT = 1
_MIN_CAPACITY = 1024


def _backup_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


class FastDocumentStore:
    """Haystack DocumentStore with vectorised cosine and BM25 retrieval, for up to 100k+ chunks in one process.

    - Embeddings live in ONE contiguous float32 array (grown by doubling) with a per-row inverse norm, so a dense
      query is one matrix-vector product. Returned embeddings are exactly the ones written: when a vector is not
      representable in float32 the original list is kept on the document as well.
    - Keywords: each write tokenizes its documents once; the bm25s index is rebuilt from those token ids on the
      first keyword query after any change, never on the write itself.
    - Every public method holds one lock, so concurrent requests never see a half-applied write or rebuild.
    """

    def __init__(
        self,
        bm25_tokenization_regex: str = _DEFAULT_BM25_TOKENIZATION_REGEX,
        bm25_parameters: dict[str, Any] | None = None,
        *,
        strict_datetime_comparison: bool = False,
    ) -> None:
        """
        :param bm25_tokenization_regex: How text is split into BM25 tokens (after lowercasing and NFC), by default
            the same as `InMemoryDocumentStore`.
        :param bm25_parameters: `k1`, `b` and `method` (one of "lucene", "robertson", "atire") for bm25s.
        :param strict_datetime_comparison: Passed to Haystack's filter matching.
        """
        self.bm25_tokenization_regex = bm25_tokenization_regex
        self.bm25_parameters = dict(bm25_parameters or {})
        unknown = set(self.bm25_parameters) - {"k1", "b", "method"}
        if unknown:
            raise ValueError(f"Unknown BM25 parameters: {sorted(unknown)}")
        if self.bm25_parameters.get("method", "lucene") not in BM25_METHODS:
            raise ValueError(f"BM25 method must be one of {BM25_METHODS}")
        self.strict_datetime_comparison = strict_datetime_comparison
        self._tokenizer = re.compile(bm25_tokenization_regex).findall
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._docs: list[Document | None] = []  # per row; embedding left out when `_vectors` holds it exactly
        self._tokens: list[list[int] | None] = []  # per row; None for dead rows and documents without content
        self._ids: dict[str, int] = {}
        self._rows = 0  # rows in use, dead ones included
        self._dead = 0
        self._alive = np.zeros(0, dtype=bool)
        self._has_vector = np.zeros(0, dtype=bool)
        self._inv_norms = np.zeros(0, dtype=np.float32)
        self._vectors: np.ndarray | None = None  # (capacity, dim) float32, raw (not normalised)
        self._vocab: dict[str, int] = {}  # token → id; only grows (ids of deleted words are harmless)
        self._bm25: bm25s.BM25 | None = None
        self._bm25_rows = np.zeros(0, dtype=np.int64)  # bm25 index position → store row
        self._bm25_vocab_size = 0
        self._bm25_stale = True
        self._columns: dict[str, list[Any]] = {}  # meta field → value per row, for fast filters

    # ---- DocumentStore protocol -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The configuration only, as `InMemoryDocumentStore.to_dict`; documents persist through `save`."""
        return default_to_dict(
            self,
            bm25_tokenization_regex=self.bm25_tokenization_regex,
            bm25_parameters=self.bm25_parameters,
            strict_datetime_comparison=self.strict_datetime_comparison,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FastDocumentStore:
        return default_from_dict(cls, data)

    def count_documents(self) -> int:
        with self._lock:
            return len(self._ids)

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        with self._lock:
            mask = self._filter_mask(filters)
            if mask is None:
                mask = self._alive[: self._rows]
            return [self._output(int(row)) for row in np.flatnonzero(mask)]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Validates the whole batch before touching the store: a batch that raises leaves the store unchanged.

        `DuplicatePolicy.NONE` means FAIL. Under OVERWRITE a document keeps its row (and so its position).
        """
        if (
            not isinstance(documents, Iterable)
            or isinstance(documents, str)
            or any(not isinstance(doc, Document) for doc in documents)
        ):
            raise ValueError("Please provide a list of Documents.")
        documents = list(documents)
        if policy == DuplicatePolicy.NONE:
            policy = DuplicatePolicy.FAIL

        with self._lock:
            batch = self._select(documents, policy)
            vectors, exact = self._batch_vectors(batch)
            tokens = [None if doc.content is None else self._token_ids(doc.content) for doc in batch]
            # Nothing below raises on bad input: the store changes only from here on.
            self._apply(batch, vectors, exact, tokens)
            return len(batch) if policy != DuplicatePolicy.OVERWRITE else len(documents)

    def delete_documents(self, document_ids: list[str]) -> None:
        with self._lock:
            for doc_id in document_ids:
                row = self._ids.pop(doc_id, None)
                if row is None:
                    continue
                self._alive[row] = False
                self._has_vector[row] = False
                self._docs[row] = None
                self._tokens[row] = None
                self._dead += 1
                self._bm25_stale = True
                self._columns = {}
            # Amortised: a compaction costs O(rows) and happens only after as many deletions as live rows.
            if self._dead and self._dead * 2 >= self._rows:
                self._compact()

    # ---- retrieval --------------------------------------------------------------------------------------------

    def embedding_retrieval(
        self,
        query_embedding: list[float],
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        scale_score: bool = False,
        return_embedding: bool = False,
    ) -> list[Document]:
        """Top-k documents by cosine similarity; documents without an embedding never match."""
        query = np.array(query_embedding, dtype=np.float32)  # a copy: normalised in place below
        if query.ndim != 1 or query.size == 0 or not np.isfinite(query).all():
            raise ValueError("query_embedding should be a non-empty list of finite floats.")
        with self._lock:
            if top_k <= 0 or self._vectors is None or not self._has_vector[: self._rows].any():
                return []
            if query.size != self._vectors.shape[1]:
                raise DocumentStoreError(
                    f"The query embedding has {query.size} dimensions, the stored embeddings {self._vectors.shape[1]}."
                )
            norm = float(np.linalg.norm(query))
            if norm > 0:
                query /= norm
            rows = self._rows
            scores = self._vectors[:rows] @ query
            scores *= self._inv_norms[:rows]
            valid = self._has_vector[:rows]  # dead rows never have a vector
            mask = self._filter_mask(filters)
            if mask is not None:
                valid = valid & mask
            if not valid.all():
                scores[~valid] = -np.inf
            best = [row for row in _top_k(scores, top_k) if scores[row] > -np.inf]
            return [
                self._output(int(row), score=_scaled_cosine(scores[row], scale_score), embedding=return_embedding)
                for row in best
            ]

    def bm25_retrieval(
        self,
        query: str,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        scale_score: bool = False,
        corpus_stats: CorpusStats | None = None,
    ) -> list[Document]:
        """Top-k documents by BM25; a document none of whose tokens occur in the query never matches.

        `corpus_stats` (documents and per-word document counts of a larger corpus this store is part of, see
        `bm25_corpus_stats`) rescales each word's IDF to that corpus, so scores compare with another store's.
        """
        if not query:
            raise ValueError("Query should be a non-empty string")
        with self._lock:
            if top_k <= 0:
                return []
            self._ensure_bm25()
            if self._bm25 is None:
                return []
            # bm25s rejects ids past the vocabulary it was built with; such words occur in no indexed document.
            ids = [i for i in self._query_token_ids(query) if i < self._bm25_vocab_size]
            if not ids:
                return []
            scores = self._bm25_scores(query, ids, corpus_stats)
            mask = self._filter_mask(filters)
            if mask is not None:
                scores[~mask[self._bm25_rows]] = -np.inf
            best = [pos for pos in _top_k(scores, top_k) if scores[pos] > 0]
            return [
                self._output(int(self._bm25_rows[pos]), score=_scaled_bm25(scores[pos], scale_score)) for pos in best
            ]

    def bm25_corpus_stats(self, query: str) -> CorpusStats:
        """How many documents the keyword index holds and, per word of `query`, how many of them contain it."""
        with self._lock:
            self._ensure_bm25()
            if self._bm25 is None:
                return CorpusStats(0, {})
            indptr = self._bm25.scores["indptr"]
            counts = {}
            for token in set(self._tokenize(query)):
                i = self._vocab.get(token)
                counts[token] = int(indptr[i + 1] - indptr[i]) if i is not None and i < self._bm25_vocab_size else 0
            return CorpusStats(len(self._bm25_rows), counts)

    def _bm25_scores(self, query: str, ids: list[int], corpus_stats: CorpusStats | None) -> np.ndarray:
        assert self._bm25 is not None
        method = self.bm25_parameters.get("method", "lucene")
        if corpus_stats is None or method != "lucene":  # lucene's IDF is positive for every count, so ratios hold
            return self._bm25.get_scores_from_ids(ids)
        indptr = self._bm25.scores["indptr"]
        own = len(self._bm25_rows)
        scores = np.zeros(own, dtype=np.float32)
        for token in self._tokenize(query):
            i = self._vocab.get(token)
            if i is None or i >= self._bm25_vocab_size or not (df_own := int(indptr[i + 1] - indptr[i])):
                continue
            df_all = max(corpus_stats.counts.get(token, 0), df_own)
            weight = _lucene_idf(df_all, max(corpus_stats.documents, own)) / _lucene_idf(df_own, own)
            scores += self._bm25.get_scores_from_ids([i]) * np.float32(weight)
        return scores

    # ---- persistence ------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Writes the store to the folder `path` through a temporary sibling folder swapped in by rename.

        A crash leaves either the previous folder or the new one; `load` also finds the previous one in the
        short window where it has been moved aside but the new one is not yet in place.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:
            with self._lock:
                self._compact()
                rows = self._rows
                vectors = np.zeros((rows, 0), np.float32) if self._vectors is None else self._vectors[:rows]
                _write_npy(temp / "embeddings.npy", vectors)
                _write_npy(temp / "has_embedding.npy", self._has_vector[:rows])
                with open(temp / "documents.jsonl", "w", encoding="utf-8") as out:
                    for row in range(rows):
                        out.write(json.dumps(self._doc(row).to_dict(flatten=False)) + "\n")
                    _sync(out)
                manifest = {"format": SAVE_FORMAT, "count": rows, "store": self.to_dict()}
                with open(temp / "store.json", "w", encoding="utf-8") as out:
                    json.dump(manifest, out)
                    _sync(out)
            backup = _backup_of(path)
            shutil.rmtree(backup, ignore_errors=True)
            if path.exists():
                os.replace(path, backup)
            os.replace(temp, path)
            shutil.rmtree(backup, ignore_errors=True)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    @classmethod
    def load(cls, path: Path) -> FastDocumentStore:
        path = Path(path)
        if not (path / "store.json").exists() and (_backup_of(path) / "store.json").exists():
            path = _backup_of(path)  # a save was interrupted between its two renames
        try:
            manifest = json.loads((path / "store.json").read_text(encoding="utf-8"))
            with open(path / "documents.jsonl", encoding="utf-8") as lines:
                docs = [Document.from_dict(json.loads(line)) for line in lines if line.strip()]
            vectors = np.load(path / "embeddings.npy")
            has_vector = np.load(path / "has_embedding.npy")
            if vectors.ndim != 2 or has_vector.ndim != 1:
                raise ValueError("embeddings.npy must be 2-D and has_embedding.npy 1-D")
        except (OSError, ValueError, KeyError) as error:
            raise DocumentStoreError(f"Cannot load a FastDocumentStore from {path}: {error}") from error
        if manifest.get("format") != SAVE_FORMAT:
            raise DocumentStoreError(f"Unsupported FastDocumentStore format {manifest.get('format')!r} in {path}")
        if not (len(docs) == manifest["count"] == len(vectors) == len(has_vector)):
            raise DocumentStoreError(f"The files in {path} disagree on the number of documents")

        store = cls.from_dict(manifest["store"])
        rows = len(docs)
        store._docs = list(docs)
        store._ids = {doc.id: row for row, doc in enumerate(docs)}
        store._tokens = [None if doc.content is None else store._token_ids(doc.content) for doc in docs]
        store._rows = rows
        store._alive = np.ones(rows, dtype=bool)
        store._has_vector = has_vector.astype(bool)
        store._vectors = np.ascontiguousarray(vectors, dtype=np.float32) if vectors.shape[1] else None
        store._inv_norms = _inverse_norms(vectors) if vectors.shape[1] else np.zeros(rows, np.float32)
        return store

    # ---- internals --------------------------------------------------------------------------------------------

    def _select(self, documents: list[Document], policy: DuplicatePolicy) -> list[Document]:
        """The documents the policy lets through, one per id; raises before anything is written."""
        chosen: dict[str, Document] = {}
        for doc in documents:
            known = doc.id in self._ids or doc.id in chosen
            if known and policy == DuplicatePolicy.FAIL:
                raise DuplicateDocumentError(f"ID '{doc.id}' already exists.")
            if known and policy == DuplicatePolicy.SKIP:
                continue
            chosen.pop(doc.id, None)  # OVERWRITE within one batch: the last one wins
            chosen[doc.id] = doc
        return list(chosen.values())

    def _batch_vectors(self, batch: list[Document]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The batch's embeddings as float32 rows and whether float32 holds each exactly; validates dimensions."""
        embedded = [doc.embedding for doc in batch if doc.embedding is not None]
        if not embedded:
            return None, None
        try:
            wide = np.asarray(embedded, dtype=np.float64)
        except (ValueError, TypeError) as error:
            raise DocumentStoreError("All embeddings in a batch must be lists of floats of one size.") from error
        if wide.ndim != 2 or wide.shape[1] == 0:
            raise DocumentStoreError("All embeddings in a batch must be non-empty lists of floats of one size.")
        if not np.isfinite(wide).all():
            raise DocumentStoreError("Embeddings must be finite (no NaN or infinity).")
        dim = self._dim_in_use()
        if dim is not None and wide.shape[1] != dim:
            raise DocumentStoreError(f"Embeddings have {wide.shape[1]} dimensions, the stored ones {dim}.")
        narrow = wide.astype(np.float32)
        return narrow, (narrow == wide).all(axis=1)

    def _dim_in_use(self) -> int | None:
        if self._vectors is None or not self._has_vector[: self._rows].any():
            return None
        return int(self._vectors.shape[1])

    def _apply(
        self,
        batch: list[Document],
        vectors: np.ndarray | None,
        exact: np.ndarray | None,
        tokens: list[list[int] | None],
    ) -> None:
        if vectors is not None and (self._vectors is None or self._vectors.shape[1] != vectors.shape[1]):
            # First embeddings, or a new size in a store without live embeddings.
            self._vectors = np.zeros((len(self._alive), vectors.shape[1]), dtype=np.float32)
            self._has_vector[:] = False
        new_rows = sum(doc.id not in self._ids for doc in batch)
        self._reserve(self._rows + new_rows)

        exact_rows = iter([] if exact is None else exact.tolist())
        rows = np.empty(len(batch), dtype=np.int64)
        for i, doc in enumerate(batch):
            row = self._ids.get(doc.id)
            if row is None:
                row = self._rows
                self._rows += 1
                self._ids[doc.id] = row
                self._docs.append(None)
                self._tokens.append(None)
            rows[i] = row
            self._alive[row] = True
            self._tokens[row] = tokens[i]
            # A copy, so later changes to the caller's object do not reach the store. The matrix gives back
            # float32-exact embeddings; only the others keep their original list.
            keep_list = doc.embedding is not None and not next(exact_rows)
            self._docs[row] = replace(doc, meta=dict(doc.meta), embedding=doc.embedding if keep_list else None)

        has = np.fromiter((doc.embedding is not None for doc in batch), dtype=bool, count=len(batch))
        self._has_vector[rows] = has
        self._inv_norms[rows] = 0.0
        if vectors is not None and self._vectors is not None:
            embedded_rows = rows[has]
            self._vectors[embedded_rows] = vectors
            self._inv_norms[embedded_rows] = _inverse_norms(vectors)
        self._bm25_stale = True
        self._columns = {}

    def _reserve(self, rows: int) -> None:
        """Grows every per-row array to at least `rows`, doubling so appends cost amortised O(1)."""
        capacity = len(self._alive)
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, _MIN_CAPACITY)
        self._alive = _grown(self._alive, capacity)
        self._has_vector = _grown(self._has_vector, capacity)
        self._inv_norms = _grown(self._inv_norms, capacity)
        if self._vectors is not None:
            self._vectors = _grown(self._vectors, capacity)

    def _compact(self) -> None:
        """Drops dead rows, keeping the order of the live ones."""
        if not self._dead:
            return
        keep = np.flatnonzero(self._alive[: self._rows])
        self._docs = [self._docs[row] for row in keep.tolist()]
        self._tokens = [self._tokens[row] for row in keep.tolist()]
        self._ids = {self._doc(row).id: row for row in range(len(keep))}
        capacity = max(len(keep), _MIN_CAPACITY)
        self._alive = _grown(self._alive[keep], capacity)
        self._has_vector = _grown(self._has_vector[keep], capacity)
        self._inv_norms = _grown(self._inv_norms[keep], capacity)
        if self._vectors is not None:
            self._vectors = _grown(self._vectors[keep], capacity)
        self._rows = len(keep)
        self._dead = 0
        self._bm25_stale = True
        self._columns = {}

    def _filter_mask(self, filters: dict[str, Any] | None) -> np.ndarray | None:
        """A boolean mask over rows (live documents matching `filters`), or None when nothing is filtered."""
        if not filters:
            return None
        if "operator" not in filters and "conditions" not in filters:
            raise ValueError(
                "Invalid filter syntax. See https://docs.haystack.deepset.ai/docs/metadata-filtering for details."
            )
        fast = self._fast_mask(filters)
        if fast is not None:
            return fast
        mask = np.zeros(self._rows, dtype=bool)
        strict = self.strict_datetime_comparison
        for row in np.flatnonzero(self._alive[: self._rows]).tolist():
            mask[row] = document_matches_filter(filters, self._doc(row), strict_datetime_comparison=strict)
        return mask

    def _fast_mask(self, filters: dict[str, Any]) -> np.ndarray | None:
        """`==` / `in` on top-level meta fields (alone or ANDed) as set lookups over a cached column: the same
        answer as Haystack's matcher for plain values, without building a Document per row. None: not such a
        filter (dates, nesting, other operators), so the general matcher decides."""
        simple = filters.get("operator") == "AND" and isinstance(filters.get("conditions"), list)
        conditions = filters["conditions"] if simple else [filters]
        mask = self._alive[: self._rows].copy()
        for condition in conditions:
            wanted = _plain_values(condition)
            if wanted is None:
                return None
            column = self._column(condition["field"][len("meta.") :])
            mask &= np.fromiter((value in wanted for value in column), dtype=bool, count=self._rows)
        return mask

    def _column(self, key: str) -> list[Any]:
        if key not in self._columns:
            values = [None if doc is None else doc.meta.get(key) for doc in self._docs[: self._rows]]
            # A list or dict never equals a plain filter value; a fresh object stands in, as it is unhashable.
            self._columns[key] = [v if v is None or isinstance(v, (str, int, float)) else object() for v in values]
        return self._columns[key]

    def _output(self, row: int, score: float | None = None, embedding: bool = True) -> Document:
        """A copy of the stored document (meta included), with its embedding and `score`."""
        doc = self._doc(row)
        vector = doc.embedding
        if not embedding:
            vector = None
        elif vector is None and self._has_vector[row] and self._vectors is not None:
            vector = self._vectors[row].tolist()
        return replace(doc, meta=dict(doc.meta), embedding=vector, score=doc.score if score is None else score)

    def _doc(self, row: int) -> Document:
        doc = self._docs[row]
        if doc is None:
            raise DocumentStoreError(f"Row {row} holds a deleted document")  # a bug in this class, not bad input
        return doc

    def _tokenize(self, text: str) -> list[str]:
        return self._tokenizer(unicodedata.normalize("NFC", text.lower()))

    def _token_ids(self, text: str) -> list[int]:
        tokens = self._tokenize(text)
        ids = list(map(self._vocab.get, tokens))  # C-speed lookups; new words are rare after the first batches
        if None in ids:
            vocab = self._vocab
            ids = [vocab.setdefault(token, len(vocab)) for token in tokens]
        return ids

    def _query_token_ids(self, text: str) -> list[int]:
        vocab = self._vocab
        return [vocab[token] for token in self._tokenize(text) if token in vocab]

    def _ensure_bm25(self) -> None:
        """Rebuilds the keyword index over live documents with content, if anything changed since the last one."""
        if not self._bm25_stale:
            return
        rows = [row for row in np.flatnonzero(self._alive[: self._rows]).tolist() if self._tokens[row] is not None]
        corpus = [self._tokens[row] for row in rows]
        self._bm25 = None
        if any(corpus):  # an index of empty documents would divide by an average length of zero
            index = bm25s.BM25(**self.bm25_parameters)
            index.index((corpus, dict(self._vocab)), create_empty_token=False, show_progress=False)
            self._bm25 = index
        self._bm25_rows = np.asarray(rows, dtype=np.int64)
        self._bm25_vocab_size = len(self._vocab)
        self._bm25_stale = False


@dataclass(frozen=True)
class CorpusStats:
    """BM25 statistics of a corpus for the words of one query; `+` joins two disjoint corpora."""

    documents: int
    counts: dict[str, int]

    def __add__(self, other: CorpusStats) -> CorpusStats:
        words = self.counts.keys() | other.counts.keys()
        counts = {w: self.counts.get(w, 0) + other.counts.get(w, 0) for w in words}
        return CorpusStats(self.documents + other.documents, counts)


def _plain_values(condition: dict[str, Any]) -> set[Any] | None:
    """The values a simple `meta.<key>` `==` / `in` condition accepts, or None when it is not that simple."""
    if not isinstance(condition, dict) or set(condition) != {"field", "operator", "value"}:
        return None
    field, operator, value = condition["field"], condition["operator"], condition["value"]
    if not isinstance(field, str) or not field.startswith("meta.") or "." in field[len("meta.") :]:
        return None
    if operator == "in" and isinstance(value, list):
        values = value
    elif operator == "==":
        values = [value]
    else:  # other operators, or an `in` without a list (the general matcher raises its FilterError)
        return None
    for item in values:
        plain = item is None or isinstance(item, (bool, int)) or (isinstance(item, float) and item == item)
        if not (plain or (isinstance(item, str) and not _looks_like_iso_date(item))):
            return None  # dates compare as points in time there, NaN never equals itself
    return set(values)


def _lucene_idf(df: int, documents: int) -> float:
    return math.log(1 + (documents - df + 0.5) / (df + 0.5))


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, without sorting the whole array."""
    n = len(scores)
    part = np.argpartition(scores, n - k)[n - k :] if k < n else np.arange(n)
    return part[np.argsort(-scores[part], kind="stable")]


def _scaled_cosine(score: float, scale: bool) -> float:
    return (float(score) + 1) / 2 if scale else float(score)


def _scaled_bm25(score: float, scale: bool) -> float:
    return float(1 / (1 + np.exp(-score / BM25_SCALING_FACTOR))) if scale else float(score)


def _inverse_norms(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1)
    # A zero vector scores 0 against everything, as in InMemoryDocumentStore, instead of NaN.
    return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array[:capacity]
    return grown


def _write_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as out:
        np.save(out, array, allow_pickle=False)
        _sync(out)


def _sync(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())
