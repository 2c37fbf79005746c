"""FastDocumentStore: Haystack's store contract, retrieval against brute force, persistence, pipeline components."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack.document_stores.errors import DocumentStoreError, DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.testing.document_store import DocumentStoreBaseTests

from pipelines.fast_retrievers import FastRetriever
from pipelines.fast_store import FastDocumentStore
from pipelines.retrieval_modes import Stage
from playground.bench.retrieval import run_retrieval_bench

DIM = 16
WORDS = [f"w{i}" for i in range(60)]


class TestFastDocumentStore(DocumentStoreBaseTests):
    @pytest.fixture
    def document_store(self) -> FastDocumentStore:
        return FastDocumentStore()

    def test_write_documents(self, document_store: FastDocumentStore) -> None:
        docs = [Document(id="1")]
        assert document_store.write_documents(docs) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents(docs)


def random_corpus(count: int = 300, seed: int = 0) -> list[Document]:
    """Random texts and embeddings; odd rows carry float64 embeddings that float32 cannot hold exactly."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(count):
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(5, 30))))
        vector = rng.standard_normal(DIM)
        embedding = vector.tolist() if i % 2 else vector.astype(np.float32).tolist()
        docs.append(Document(id=f"d{i}", content=text, meta={"group": i % 3}, embedding=embedding))
    return docs


def brute_dense(docs: list[Document], query: np.ndarray, k: int) -> list[str]:
    matrix = np.array([d.embedding for d in docs])
    scores = matrix @ query / np.linalg.norm(matrix, axis=1) / np.linalg.norm(query)
    return [docs[i].id for i in np.argsort(-scores)[:k]]


def bm25_scores(docs: list[Document], query: str, k1: float = 1.5, b: float = 0.75) -> dict[str, float]:
    """Lucene BM25, the bm25s default, written out term by term; only documents that match."""
    tokens = [d.content.lower().split() for d in docs]
    avgdl = sum(map(len, tokens)) / len(tokens)
    df = Counter(t for doc in tokens for t in set(doc))
    scores = []
    for doc in tokens:
        tf = Counter(doc)
        score = 0.0
        for term in query.lower().split():
            if tf[term]:
                idf = math.log(1 + (len(docs) - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(score)
    return {d.id: score for d, score in zip(docs, scores, strict=True) if score > 0}


def assert_bm25_ranking(found: list[Document], docs: list[Document], query: str, k: int) -> None:
    """The best k by brute force, compared by score: documents that tie may come in either order."""
    expected = bm25_scores(docs, query)
    assert [d.score for d in found] == pytest.approx(sorted(expected.values(), reverse=True)[:k], rel=1e-5)
    assert all(d.score == pytest.approx(expected[d.id], rel=1e-5) for d in found)


@pytest.fixture
def corpus() -> list[Document]:
    return random_corpus()


@pytest.fixture
def store(corpus: list[Document]) -> FastDocumentStore:
    store = FastDocumentStore()
    store.write_documents(corpus)
    return store


def ids(docs: list[Document]) -> list[str]:
    return [d.id for d in docs]


def test_dense_retrieval_matches_brute_force(store: FastDocumentStore, corpus: list[Document]) -> None:
    rng = np.random.default_rng(1)
    for _ in range(10):
        query = rng.standard_normal(DIM)
        found = store.embedding_retrieval(query.tolist(), top_k=7)
        assert ids(found) == brute_dense(corpus, query, 7)
        assert all(d.embedding is None and d.score is not None for d in found)
        assert found[0].score == pytest.approx(
            float(np.dot(corpus[int(found[0].id[1:])].embedding, query))
            / np.linalg.norm(corpus[int(found[0].id[1:])].embedding)
            / np.linalg.norm(query),
            abs=1e-5,
        )


def test_bm25_retrieval_matches_brute_force(store: FastDocumentStore, corpus: list[Document]) -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        query = " ".join(rng.choice(WORDS, size=3))
        found = store.bm25_retrieval(query, top_k=5)
        assert len(found) == 5
        assert_bm25_ranking(found, corpus, query, 5)


def test_bm25_finds_the_document_with_a_distinctive_word(store: FastDocumentStore) -> None:
    store.write_documents([Document(id="tent", content="w1 w2 the Summit quasarwidget tent w3")])
    assert store.bm25_retrieval("quasarwidget", top_k=3)[0].id == "tent"
    assert ids(store.bm25_retrieval("QUASARWIDGET price", top_k=3)) == ["tent"]
    assert store.bm25_retrieval("nothingmatches", top_k=3) == []


def test_filters_apply_to_retrieval(store: FastDocumentStore, corpus: list[Document]) -> None:
    filters = {"field": "meta.group", "operator": "==", "value": 1}
    subset = [d for d in corpus if d.meta["group"] == 1]
    query = np.random.default_rng(3).standard_normal(DIM)
    assert ids(store.embedding_retrieval(query.tolist(), top_k=6, filters=filters)) == brute_dense(subset, query, 6)
    dense = store.embedding_retrieval(query.tolist(), top_k=100, filters=filters)
    assert {d.meta["group"] for d in dense} == {1}
    keyword = store.bm25_retrieval("w1 w7", top_k=5, filters=filters)
    assert {d.meta["group"] for d in keyword} == {1}
    # IDF still comes from the whole corpus: the scores are the corpus scores, restricted to the subset.
    expected = bm25_scores(corpus, "w1 w7")
    in_subset = sorted((v for k, v in expected.items() if int(k[1:]) % 3 == 1), reverse=True)[:5]
    assert [d.score for d in keyword] == pytest.approx(in_subset, rel=1e-5)


def test_delete_leaves_no_stale_results(store: FastDocumentStore, corpus: list[Document]) -> None:
    query = np.random.default_rng(4).standard_normal(DIM)
    store.bm25_retrieval("w5", top_k=1)  # build the index, so the deletes below must invalidate it
    top_dense = store.embedding_retrieval(query.tolist(), top_k=1)[0].id
    top_bm25 = store.bm25_retrieval("w5 w6", top_k=1)[0].id
    store.delete_documents([top_dense, top_bm25])
    remaining = [d for d in corpus if d.id not in {top_dense, top_bm25}]
    assert store.count_documents() == len(remaining)
    assert ids(store.embedding_retrieval(query.tolist(), top_k=5)) == brute_dense(remaining, query, 5)
    assert_bm25_ranking(store.bm25_retrieval("w5 w6", top_k=5), remaining, "w5 w6", 5)
    assert top_bm25 not in ids(store.bm25_retrieval("w5 w6", top_k=len(corpus)))

    # Deleting most of the store compacts it; results still match the survivors.
    gone = [d.id for d in remaining[: len(remaining) * 3 // 4]]
    store.delete_documents(gone)
    survivors = [d for d in remaining if d.id not in set(gone)]
    assert store._rows == len(survivors)  # compacted
    assert store.filter_documents() == survivors
    assert ids(store.embedding_retrieval(query.tolist(), top_k=5)) == brute_dense(survivors, query, 5)
    assert_bm25_ranking(store.bm25_retrieval("w5 w6", top_k=5), survivors, "w5 w6", 5)

    store.delete_documents([d.id for d in survivors])
    assert store.embedding_retrieval(query.tolist(), top_k=5) == []
    assert store.bm25_retrieval("w5", top_k=5) == []


def test_failed_writes_leave_the_store_unchanged(store: FastDocumentStore, corpus: list[Document]) -> None:
    before = store.filter_documents()
    query = np.random.default_rng(5).standard_normal(DIM).tolist()
    dense_before = store.embedding_retrieval(query, top_k=5)
    fresh = Document(id="fresh", content="brandnewword", embedding=[1.0] * DIM)

    with pytest.raises(DuplicateDocumentError):
        store.write_documents([fresh, corpus[3]], policy=DuplicatePolicy.FAIL)
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([fresh, fresh])  # a duplicate inside the batch, default policy
    with pytest.raises(DocumentStoreError):
        store.write_documents([fresh, Document(id="short", content="x", embedding=[1.0] * (DIM - 1))])
    with pytest.raises(DocumentStoreError):
        store.write_documents([fresh, Document(id="nan", content="x", embedding=[float("nan")] * DIM)])
    with pytest.raises(ValueError):
        store.write_documents([fresh, "not a document"])  # type: ignore[list-item]

    assert store.filter_documents() == before
    assert store.embedding_retrieval(query, top_k=5) == dense_before
    assert store.bm25_retrieval("brandnewword", top_k=5) == []


def test_write_policies(store: FastDocumentStore, corpus: list[Document]) -> None:
    assert store.write_documents([corpus[0], Document(id="new", content="w1")], policy=DuplicatePolicy.SKIP) == 1
    changed = Document(id=corpus[1].id, content="zebracorn", meta={"group": 9}, embedding=[0.5] * DIM)
    assert store.write_documents([changed], policy=DuplicatePolicy.OVERWRITE) == 1
    listed = store.filter_documents()
    assert listed[1] == changed  # overwriting keeps the document's position
    assert store.count_documents() == len(corpus) + 1
    assert ids(store.bm25_retrieval("zebracorn", top_k=2)) == [corpus[1].id]
    assert store.embedding_retrieval([0.5] * DIM, top_k=1)[0].id == corpus[1].id


def test_returned_documents_are_copies(store: FastDocumentStore, corpus: list[Document]) -> None:
    store.filter_documents()[0].meta["group"] = "changed"
    store.embedding_retrieval(corpus[0].embedding, top_k=1)[0].meta["group"] = "changed"
    corpus[0].meta["group"] = "changed by the caller"
    assert store.filter_documents()[0].meta == {"group": 0}


def test_save_and_load_round_trip(tmp_path: Path, store: FastDocumentStore) -> None:
    store.write_documents([Document(id="bare", content="no embedding here"), Document(id="empty", content=None)])
    store.delete_documents(["d7"])
    path = tmp_path / "index"
    store.save(path)
    loaded = FastDocumentStore.load(path)

    assert loaded.count_documents() == store.count_documents()
    assert loaded.filter_documents() == store.filter_documents()  # float64 embeddings included, exactly
    query = np.random.default_rng(6).standard_normal(DIM).tolist()
    assert loaded.embedding_retrieval(query, top_k=8) == store.embedding_retrieval(query, top_k=8)
    assert loaded.bm25_retrieval("w3 w4 here", top_k=8) == store.bm25_retrieval("w3 w4 here", top_k=8)
    assert loaded.to_dict() == store.to_dict()

    # Saving again replaces the folder; a save that fails keeps the previous one.
    loaded.write_documents([Document(id="later", content="afterwards")])
    loaded.save(path)
    assert FastDocumentStore.load(path).count_documents() == store.count_documents() + 1
    loaded.write_documents([Document(id="bad", content="x", meta={"not json": object()})])
    with pytest.raises(TypeError):
        loaded.save(path)
    assert FastDocumentStore.load(path).count_documents() == store.count_documents() + 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]


def test_load_of_a_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(DocumentStoreError):
        FastDocumentStore.load(tmp_path / "nothing")


def test_retrievers_in_a_pipeline(store: FastDocumentStore, corpus: list[Document]) -> None:
    pipeline = Pipeline()
    pipeline.add_component("bm25", FastRetriever(store, Stage.KEYWORD, top_k=4))
    pipeline.add_component("dense", FastRetriever(store, Stage.DENSE, top_k=4))
    pipeline.add_component("fusion", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=3))
    pipeline.connect("bm25.documents", "fusion.documents")
    pipeline.connect("dense.documents", "fusion.documents")
    query = np.random.default_rng(7).standard_normal(DIM)
    inputs = {"bm25": {"query": "w2 w9"}, "dense": {"query_embedding": query.tolist()}}

    result = pipeline.run(inputs, include_outputs_from={"bm25", "dense"})
    assert_bm25_ranking(result["bm25"]["documents"], corpus, "w2 w9", 4)
    assert ids(result["dense"]["documents"]) == brute_dense(corpus, query, 4)
    fused = result["fusion"]["documents"]
    assert len(fused) == 3
    assert set(ids(fused)) <= set(ids(result["bm25"]["documents"] + result["dense"]["documents"]))

    filtered = pipeline.run(
        {
            "bm25": {"query": "w2 w9", "filters": {"field": "meta.group", "operator": "==", "value": 2}},
            "dense": {"query_embedding": query.tolist(), "top_k": 2},
        },
        include_outputs_from={"bm25", "dense"},
    )
    assert {d.meta["group"] for d in filtered["bm25"]["documents"]} == {2}
    assert len(filtered["dense"]["documents"]) == 2

    restored = Pipeline.from_dict(
        pipeline.to_dict(), allowed_modules=["pipelines.fast_retrievers", "pipelines.fast_store"]
    )
    retriever = restored.get_component("dense")
    assert isinstance(retriever, FastRetriever) and retriever.stage is Stage.DENSE
    assert isinstance(retriever.document_store, FastDocumentStore)
    assert retriever.to_dict() == pipeline.get_component("dense").to_dict()


def test_retrievers_check_their_arguments(store: FastDocumentStore) -> None:
    with pytest.raises(TypeError):
        FastRetriever(object(), Stage.KEYWORD)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FastRetriever(store, "no-such-stage")
    with pytest.raises(ValueError):
        FastRetriever(store, Stage.DENSE, top_k=0)
    for top_k in (0, -1):  # a stage that should not run is left out of the pipeline, never asked for nothing
        with pytest.raises(ValueError, match="top_k"):
            FastRetriever(store, Stage.KEYWORD).run(query="w1", top_k=top_k)
    with pytest.raises(ValueError, match="query_embedding"):
        FastRetriever(store, Stage.DENSE).run(query="w1")  # a dense stage reads the embedding, not the words
    with pytest.raises(ValueError, match="Query"):
        FastRetriever(store, Stage.KEYWORD).run(query="")


def test_retrieval_bench_small() -> None:
    result = run_retrieval_bench(chunks=2000, queries=5)
    assert result["chunks"] == 2000
    for key in ("dense_p50_ms", "bm25_p50_ms", "fused_p50_ms", "write_s"):
        assert result[key] > 0
        if key != "write_s" or "write_s" in result["baseline"]:
            assert result["baseline"][key] > 0
    assert result["baseline"]["baseline_queries"] == 5
    assert set(result["speedup"]) == {"dense", "bm25", "fused"}
    assert all(value > 0 for value in result["speedup"].values())


def test_fast_meta_filters_agree_with_haystacks_matcher(store: FastDocumentStore) -> None:
    """`==` / `in` on meta fields take a vectorised path; it must select exactly what Haystack's matcher does."""
    from haystack.utils.filters import document_matches_filter

    values = ["a.md", "b.md", "2024-01-02", 1, 1.0, True, None, 2.5, ["x"], "c.txt"]
    docs = [Document(content=f"doc {i}", meta={"file_path": values[i % len(values)], "n": i % 3}) for i in range(60)]
    docs.append(Document(content="no meta at all"))
    store.write_documents(docs)
    store.delete_documents([docs[0].id, docs[7].id])  # dead rows must not match
    filters = [
        {"field": "meta.file_path", "operator": "==", "value": "a.md"},
        {"field": "meta.file_path", "operator": "in", "value": ["a.md", "c.txt", 1]},
        {"field": "meta.file_path", "operator": "==", "value": None},
        {"field": "meta.file_path", "operator": "==", "value": "2024-01-02T00:00:00"},
        {"field": "meta.file_path", "operator": "in", "value": [True]},
        {"field": "meta.missing", "operator": "==", "value": None},
        {
            "operator": "AND",
            "conditions": [
                {"field": "meta.file_path", "operator": "in", "value": ["a.md", "b.md"]},
                {"field": "meta.n", "operator": "==", "value": 1},
            ],
        },
    ]
    live = store.filter_documents()
    for condition in filters:
        looks_like_a_date = "2024" in str(condition)
        assert (store._fast_mask(condition) is None) == looks_like_a_date, condition  # dates: the general way
        expected = sorted(d.id for d in live if document_matches_filter(condition, d))
        assert sorted(d.id for d in store.filter_documents(condition)) == expected, condition
    # A write after a filter must show up in the next one (the cached column is dropped).
    store.write_documents([Document(content="late", meta={"file_path": "a.md"})])
    assert any(d.content == "late" for d in store.filter_documents(filters[0]))
