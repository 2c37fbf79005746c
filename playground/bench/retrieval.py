"""Retrieval latency at scale: FastDocumentStore against Haystack's InMemoryDocumentStore on synthetic chunks.

`python -m playground bench retrieval [--chunks 100000] [--queries 50] --json` prints the figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from pipelines.fast_store import FastDocumentStore

TOP_K = 5
RRF_K = 60
VOCABULARY = 3000
BASELINE_QUERIES = 5  # the in-memory store takes seconds per query at 100k chunks
TARGET_SPEEDUP = 10.0  # the in-memory store's p50 / the fast store's, dense, BM25 and fused each; at least
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def made_up_words(count: int, rng: np.random.Generator) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 5)))))
    return sorted(words)


def synthetic_chunks(chunks: int, dim: int, rng: np.random.Generator) -> tuple[list[Document], list[str]]:
    """~60-word chunks over a Zipf-like vocabulary (as in real text, a few words are everywhere), random unit
    embeddings stored as float32 values as an embedder would give them; plus the vocabulary."""
    vocabulary = made_up_words(VOCABULARY, rng)
    weights = 1.0 / np.arange(1, VOCABULARY + 1)
    lengths = rng.integers(50, 71, size=chunks)
    picks = rng.choice(VOCABULARY, size=int(lengths.sum()), p=weights / weights.sum())
    vectors = rng.standard_normal((chunks, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs, start = [], 0
    for i, length in enumerate(lengths.tolist()):
        text = " ".join(vocabulary[w] for w in picks[start : start + length])
        start += length
        docs.append(
            Document(
                id=f"chunk-{i}", content=text, meta={"source": f"file-{i % 100}.md"}, embedding=vectors[i].tolist()
            )
        )
    return docs, vocabulary


def reciprocal_rank_fusion(lists: Sequence[Sequence[Document]], top_k: int = TOP_K, k: int = RRF_K) -> list[str]:
    """Document ids ranked by the sum of 1 / (k + rank) over the lists (rank from 1)."""
    fused: dict[str, float] = {}
    for docs in lists:
        for rank, doc in enumerate(docs, start=1):
            fused[doc.id] = fused.get(doc.id, 0.0) + 1.0 / (k + rank)
    return sorted(fused, key=fused.__getitem__, reverse=True)[:top_k]


def _p50_ms(run: Callable[[int], object], count: int) -> float:
    timings = []
    for i in range(count):
        start = time.perf_counter()
        run(i)
        timings.append(time.perf_counter() - start)
    return round(statistics.median(timings) * 1000, 3)


def _latencies(
    dense: Callable[[list[float]], list[Document]],
    bm25: Callable[[str], list[Document]],
    texts: list[str],
    embeddings: list[list[float]],
    count: int,
) -> dict[str, float]:
    return {
        "dense_p50_ms": _p50_ms(lambda i: dense(embeddings[i]), count),
        "bm25_p50_ms": _p50_ms(lambda i: bm25(texts[i]), count),
        "fused_p50_ms": _p50_ms(lambda i: reciprocal_rank_fusion([bm25(texts[i]), dense(embeddings[i])]), count),
    }


def run_retrieval_bench(chunks: int = 100_000, queries: int = 50, dim: int = 384, seed: int = 0) -> dict[str, Any]:
    """Write time and p50 latencies (top-5) of dense, BM25 and fused (both, by RRF) retrieval, fast store vs
    in-memory."""
    rng = np.random.default_rng(seed)
    docs, vocabulary = synthetic_chunks(chunks, dim, rng)
    # Queries: four words of a random chunk (so they match something) and random unit vectors.
    texts = [" ".join(rng.choice(docs[int(rng.integers(chunks))].content.split(), size=4)) for _ in range(queries + 1)]
    vectors = rng.standard_normal((queries + 1, dim), dtype=np.float32)
    embeddings = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist()

    fast = FastDocumentStore()
    start = time.perf_counter()
    fast.write_documents(docs)
    fast.bm25_retrieval(texts[-1], top_k=TOP_K)  # the first keyword query builds the index
    write_s = time.perf_counter() - start
    fast.embedding_retrieval(embeddings[-1], top_k=TOP_K)  # warm-up, untimed
    figures = _latencies(
        partial(fast.embedding_retrieval, top_k=TOP_K),
        partial(fast.bm25_retrieval, top_k=TOP_K),
        texts,
        embeddings,
        queries,
    )
    del fast  # frees its matrix and index before the baseline copies everything again

    baseline_queries = min(BASELINE_QUERIES, queries)
    memory = InMemoryDocumentStore(embedding_similarity_function="cosine", shared=False)
    start = time.perf_counter()
    memory.write_documents(docs)
    baseline_write_s = time.perf_counter() - start
    baseline = _latencies(
        partial(memory.embedding_retrieval, top_k=TOP_K),
        partial(memory.bm25_retrieval, top_k=TOP_K),
        texts,
        embeddings,
        baseline_queries,
    )
    baseline.update(write_s=round(baseline_write_s, 3), baseline_queries=baseline_queries)
    speedup = {
        name: round(baseline[f"{name}_p50_ms"] / max(figures[f"{name}_p50_ms"], 1e-6), 1)
        for name in ("dense", "bm25", "fused")
    }
    return {
        "chunks": chunks,
        "queries": queries,
        "dim": dim,
        "top_k": TOP_K,
        "vocabulary": len(vocabulary),
        **figures,
        "write_s": round(write_s, 3),
        "baseline": baseline,
        "speedup": speedup,
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": all(value >= TARGET_SPEEDUP for value in speedup.values()),
    }
