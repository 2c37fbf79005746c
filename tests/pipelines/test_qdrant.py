"""The Qdrant backend in Qdrant's local mode: hashed BM25 sparse vectors, dense search, filters, persistence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from haystack import Document, Pipeline
from haystack.components.joiners import DocumentJoiner
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from pipelines.fast_retrievers import FastRetriever
from pipelines.fast_store import FastDocumentStore
from pipelines.qdrant_backend import (
    BM25SparseEmbedder,
    BM25SparseEncoder,
    QdrantRetriever,
    open_qdrant_store,
    write_to_qdrant,
)
from pipelines.retrieval_modes import RetrievalMode, Stage
from pipelines.store import shared_retriever

DIM = 8
TEXTS = {
    "a.txt": "Retrieval augmented generation looks up passages before the model answers.",
    "b.txt": "Fine-tuning changes the model weights with a LoRA adapter trained on examples.",
    "c.txt": "The zygomorphic orchid blooms in spring; the orchid needs little water.",
    "d.txt": "The model answers questions; the model can be small or large.",
}


def corpus() -> list[Document]:
    """One chunk per file; file i's embedding is the i-th unit vector, so the nearest is known."""
    return [
        Document(content=text, meta={"file_path": name}, embedding=np.eye(DIM)[i].tolist())
        for i, (name, text) in enumerate(TEXTS.items())
    ]


@pytest.fixture
def store() -> Iterator[QdrantDocumentStore]:
    store = open_qdrant_store(":memory:", embedding_dim=DIM)
    write_to_qdrant(store, corpus())
    yield store
    store.close()


def files(docs: list[Document]) -> list[str]:
    return [doc.meta["file_path"] for doc in docs]


def qdrant_retrievers(store: QdrantDocumentStore, top_k: int) -> tuple[QdrantRetriever, QdrantRetriever]:
    """The keyword and dense retrievers, as the query pipeline gets them for a Qdrant store."""
    keyword, dense = (shared_retriever(store, stage, top_k) for stage in (Stage.KEYWORD, Stage.DENSE))
    assert isinstance(keyword, QdrantRetriever) and isinstance(dense, QdrantRetriever)
    return keyword, dense


def test_encoder_is_stable_and_saturates() -> None:
    encoder = BM25SparseEncoder()
    once, twice = encoder.document("orchid"), encoder.document("orchid orchid")
    assert once is not None and twice is not None
    assert once.indices == twice.indices == encoder.query("Orchid!").indices  # crc32, not the salted hash()
    assert once.values[0] < twice.values[0] < 1.0
    assert encoder.query("?!") is None  # no word at all
    assert BM25SparseEncoder(stopwords=["the"]).tokens("The orchid") == ["orchid"]


def test_keyword_retrieval_ranks_rare_words_first(store: QdrantDocumentStore) -> None:
    keyword, _ = qdrant_retrievers(store, top_k=4)
    found = keyword.run(query="zygomorphic model")["documents"]
    assert files(found)[0] == "c.txt"  # one rare word outweighs a common one said twice (d.txt)
    assert set(files(found)) == set(TEXTS)
    assert files(keyword.run(query="LoRA")["documents"]) == ["b.txt"]  # only documents with a query word
    assert all(doc.score is not None and doc.score > 0 for doc in found)
    assert keyword.run(query="unknownword")["documents"] == []
    scaled = keyword.run(query="zygomorphic", scale_score=True)["documents"]
    assert 0.5 < scaled[0].score < 1


def test_keyword_scores_equal_the_fast_store_when_lengths_agree() -> None:
    """Server-side IDF × our term weights is bm25s's Lucene BM25 once avg_len is the corpus average."""
    docs = [Document(content=text, meta={"file_path": name}) for name, text in TEXTS.items()]
    encoder = BM25SparseEncoder()
    avg_len = sum(len(encoder.tokens(doc.content or "")) for doc in docs) / len(docs)
    qdrant = open_qdrant_store(":memory:", embedding_dim=DIM)
    qdrant.write_documents(BM25SparseEmbedder(avg_len=avg_len).run(documents=docs)["documents"])
    fast = FastDocumentStore()
    fast.write_documents(docs)
    query = "the model answers orchid"
    got = {d.id: d.score for d in QdrantRetriever(qdrant, Stage.KEYWORD).run(query=query)["documents"]}
    want = {d.id: d.score for d in FastRetriever(fast, Stage.KEYWORD).run(query=query)["documents"]}
    assert got.keys() == want.keys()
    assert all(got[key] == pytest.approx(want[key], rel=1e-4) for key in want)
    qdrant.close()


def test_dense_retrieval_is_nearest_by_cosine(store: QdrantDocumentStore) -> None:
    _, dense = qdrant_retrievers(store, top_k=2)
    query = np.eye(DIM)[2] * 3 + np.eye(DIM)[0]  # closest to c.txt, then a.txt; length does not matter
    found = dense.run(query_embedding=query.tolist())["documents"]
    assert files(found) == ["c.txt", "a.txt"]
    assert found[0].score == pytest.approx(3 / np.sqrt(10))
    assert found[0].embedding is None
    assert dense.run(query_embedding=query.tolist(), return_embedding=True)["documents"][0].embedding is not None


def test_filters_by_file_path(store: QdrantDocumentStore) -> None:
    keyword, dense = qdrant_retrievers(store, top_k=4)
    only = {"field": "meta.file_path", "operator": "in", "value": ["a.txt", "d.txt"]}
    assert set(files(keyword.run(query="model orchid", filters=only)["documents"])) == {"a.txt", "d.txt"}
    assert set(files(dense.run(query_embedding=[1.0] * DIM, filters=only)["documents"])) == {"a.txt", "d.txt"}
    preset = QdrantRetriever(
        store, Stage.DENSE, filters={"field": "meta.file_path", "operator": "==", "value": "b.txt"}
    )
    assert files(preset.run(query_embedding=[1.0] * DIM)["documents"]) == ["b.txt"]


def test_top_k_below_one_is_refused(store: QdrantDocumentStore) -> None:
    keyword, dense = qdrant_retrievers(store, top_k=3)
    for top_k in (0, -1):  # a stage that should not run is left out of the pipeline, never asked for nothing
        with pytest.raises(ValueError, match="top_k"):
            keyword.run(query="orchid", top_k=top_k)
        with pytest.raises(ValueError, match="top_k"):
            dense.run(query_embedding=[1.0] * DIM, top_k=top_k)
    with pytest.raises(ValueError, match="top_k"):
        QdrantRetriever(store, Stage.DENSE, top_k=0)


def test_writes_are_idempotent(store: QdrantDocumentStore) -> None:
    assert write_to_qdrant(store, corpus()) == len(TEXTS)
    assert store.count_documents() == len(TEXTS)
    assert write_to_qdrant(store, []) == 0


def test_local_folder_persists_across_reopen(tmp_path: Path) -> None:
    folder = str(tmp_path / "qdrant")
    store = open_qdrant_store(folder, embedding_dim=DIM)
    write_to_qdrant(store, corpus())
    store.close()  # releases local mode's folder lock
    reopened = open_qdrant_store(folder, embedding_dim=DIM)
    assert reopened.count_documents() == len(TEXTS)
    keyword, _ = qdrant_retrievers(reopened, top_k=1)
    assert files(keyword.run(query="zygomorphic")["documents"]) == ["c.txt"]
    reopened.close()
    assert open_qdrant_store(folder, embedding_dim=DIM, recreate=True).count_documents() == 0


def test_a_collection_without_idf_is_refused(tmp_path: Path) -> None:
    folder = str(tmp_path / "plain")
    plain = QdrantDocumentStore(path=folder, index="playground", embedding_dim=DIM, use_sparse_embeddings=True)
    plain.count_documents()  # creates the collection, without the IDF modifier
    plain.close()
    with pytest.raises(ValueError, match="IDF"):
        open_qdrant_store(folder, embedding_dim=DIM)
    open_qdrant_store(folder, embedding_dim=DIM, recreate=True).close()
    with pytest.raises(ValueError, match="sparse"):
        QdrantRetriever(QdrantDocumentStore(":memory:", embedding_dim=DIM), Stage.KEYWORD)  # a dense-only store


def test_fused_pipeline_with_reciprocal_rank_fusion(store: QdrantDocumentStore) -> None:
    keyword, dense = qdrant_retrievers(store, top_k=2)
    pipeline = Pipeline()
    pipeline.add_component("bm25_retriever", keyword)
    pipeline.add_component("dense_retriever", dense)
    pipeline.add_component("fusion", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=2))
    pipeline.connect("bm25_retriever.documents", "fusion.documents")
    pipeline.connect("dense_retriever.documents", "fusion.documents")
    only = {"field": "meta.file_path", "operator": "in", "value": ["b.txt", "c.txt"]}
    data = {
        "bm25_retriever": {"query": "orchid", "top_k": 2, "filters": only},
        "dense_retriever": {"query_embedding": np.eye(DIM)[1].tolist(), "top_k": 2, "filters": only},
    }
    fused = pipeline.run(data)["fusion"]["documents"]
    assert set(files(fused)) == {"b.txt", "c.txt"}
    assert all(doc.score is not None for doc in fused)


@pytest.mark.parametrize("stage", list(Stage))
def test_sockets_match_the_fast_retriever(store: QdrantDocumentStore, stage: Stage) -> None:
    def sockets(retriever: object, direction: str) -> dict[str, tuple[object, object]]:
        found = getattr(retriever, direction)._sockets_dict
        return {name: (socket.type, getattr(socket, "default_value", None)) for name, socket in found.items()}

    mine, fast = QdrantRetriever(store, stage), FastRetriever(FastDocumentStore(), stage)
    assert sockets(mine, "__haystack_input__") == sockets(fast, "__haystack_input__")
    assert sockets(mine, "__haystack_output__") == sockets(fast, "__haystack_output__")


def test_retrievers_round_trip_through_to_dict(store: QdrantDocumentStore) -> None:
    keyword = QdrantRetriever(store, Stage.KEYWORD, top_k=4, scale_score=True)
    again = QdrantRetriever.from_dict(keyword.to_dict())
    assert again.top_k == 4 and again.stage is Stage.KEYWORD and again.scale_score
    assert isinstance(again.document_store, QdrantDocumentStore)
    embedder = BM25SparseEmbedder(avg_len=50.0, stopwords=["the"])
    assert BM25SparseEmbedder.from_dict(embedder.to_dict()).to_dict() == embedder.to_dict()


def test_the_app_retrieves_from_qdrant_when_configured(settings, runtime, tmp_path, request):
    from dataclasses import replace

    from playground.compare import CompareOptions, CompareService
    from playground.documents import DocumentsService
    from playground.runtime import start

    qdrant_runtime = start(replace(settings, document_store="qdrant", qdrant_url=":memory:"))
    request.addfinalizer(qdrant_runtime.workspaces.close)  # now, not when collected: it shares the session's folder
    assert isinstance(qdrant_runtime.store, QdrantDocumentStore)
    assert qdrant_runtime.store.count_documents() == runtime.store.count_documents()
    service = CompareService(qdrant_runtime)
    question = "How much does the Summit 2 tent cost?"
    for mode in RetrievalMode:
        chunks = service.compare(
            question, CompareOptions(arms=("rag", "finetuned"), max_new_tokens=8, retrieval=mode)
        ).chunks
        assert chunks and chunks[0]["source"] == "summit-2-tent.md", (mode, chunks)
    # A session's upload is still private to it, next to the Qdrant-backed shared store.
    upload = tmp_path / "zorblax.txt"
    upload.write_text("The Zorblax quartz lantern was designed by Ottoline Brisk at the Fernhollow kiosk.")
    documents = DocumentsService(qdrant_runtime)
    mine = documents.workspace(None).id
    documents.upload(mine, [upload])
    ask = CompareOptions(arms=("rag", "finetuned"), max_new_tokens=8, workspace=mine)
    assert service.compare("Who designed the Zorblax lantern?", ask).chunks[0]["source"] == "zorblax.txt"
    assert "summit-2-tent.md" in service.sources(mine) and "zorblax.txt" in service.sources(mine)


def test_qdrant_settings_are_checked(settings):
    from dataclasses import replace

    from playground.runtime import start

    with pytest.raises(ValueError, match="PLAYGROUND_QDRANT_URL"):
        start(replace(settings, document_store="qdrant", qdrant_url=""))
    with pytest.raises(ValueError, match="PLAYGROUND_DOCUMENT_STORE"):
        start(replace(settings, document_store="elastic"))
