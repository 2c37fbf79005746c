"""Retrieval modes as data: a mode's pipeline holds only the stages it runs, retrievers refuse top_k < 1, old mode
names still parse, a session's chunks stay its own, and stage scores take any number of stages."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from haystack import Document
from haystack.components.joiners.document_joiner import JoinMode

from adapters.errors import UserError
from pipelines.components import StageScores
from pipelines.embedder import EmbedderInfo
from pipelines.fast_retrievers import FastRetriever, SessionStores
from pipelines.fast_store import FastDocumentStore
from pipelines.rag import pipeline_inputs, query_pipeline, run_query
from pipelines.retrieval_modes import DEFAULT_MODE, FUSED, RetrievalMode, Stage
from pipelines.retriever_base import StoreRetriever

DIM = 4
# Building a pipeline loads no model: only a mode with a dense stage would load this one, when it first runs.
NO_MODEL = EmbedderInfo("no-such-embedding-model", "none", True, 256)
EXPECTED_RETRIEVERS = {
    RetrievalMode.FUSED: {"bm25_retriever", "private_bm25_retriever", "dense_retriever", "private_dense_retriever"},
    RetrievalMode.KEYWORD: {"bm25_retriever", "private_bm25_retriever"},
    RetrievalMode.DENSE: {"dense_retriever", "private_dense_retriever"},
}


def _store(texts: dict[str, str]) -> FastDocumentStore:
    """One chunk per file; file i's embedding is the i-th unit vector."""
    store = FastDocumentStore()
    store.write_documents(
        [
            Document(content=text, meta={"file_path": name}, embedding=np.eye(DIM)[i].tolist())
            for i, (name, text) in enumerate(texts.items())
        ]
    )
    return store


@pytest.fixture
def shared() -> FastDocumentStore:
    return _store(
        {
            "tents.md": "The Summit 2 tent costs 349 dollars and sleeps two.",
            "boots.md": "Resoling boots at the repair shop costs 60 dollars.",
            "returns.md": "Items can be returned within 30 days of purchase.",
        }
    )


@pytest.fixture
def sessions(shared: FastDocumentStore) -> SessionStores:
    stores = {
        "mine": _store({"mine.txt": "The zorblax kiosk opens at nine.", "mine-2.txt": "Kiosk notes."}),
        "theirs": _store({"theirs.txt": "The zorblax lantern belongs to someone else."}),
        "empty": FastDocumentStore(),
    }
    return SessionStores(stores.get, keyword_stats=shared)


def _retrievers(pipeline) -> dict[str, StoreRetriever]:
    return {name: component for name, component in pipeline.walk() if isinstance(component, StoreRetriever)}


@pytest.mark.parametrize(("mode", "expected"), EXPECTED_RETRIEVERS.items())
def test_a_mode_builds_only_the_retrievers_it_runs(shared, mode, expected):
    pipeline = query_pipeline(shared, NO_MODEL, engine=None, mode=mode)
    assert set(_retrievers(pipeline)) == expected


@pytest.mark.parametrize("mode", list(RetrievalMode))
def test_every_component_a_mode_builds_is_asked_and_nothing_else(shared, mode):
    pipeline = query_pipeline(shared, NO_MODEL, engine=None, mode=mode)
    names = set(pipeline.graph.nodes)
    retrievers = _retrievers(pipeline)
    assert {r.stage for r in retrievers.values()} == set(mode.stages)
    private = [r for r in retrievers.values() if isinstance(r.document_store, SessionStores)]
    assert len(retrievers) == 2 * len(mode.stages) and {r.stage for r in private} == set(mode.stages)
    assert ("text_embedder" in names) == mode.embedded
    assert (FUSED in names) == (mode.join is not None)
    data = pipeline_inputs("How much is the tent?", mode=mode, workspace="mine", rerank=True)
    assert set(data) <= names  # Haystack refuses inputs for a component the pipeline lacks
    assert set(retrievers) <= set(data) and all(data[name]["top_k"] >= 1 for name in retrievers)


def test_a_keyword_mode_runs_without_the_embedding_model(shared, sessions):
    pipeline = query_pipeline(shared, NO_MODEL, engine=None, private=sessions.lookup, mode=RetrievalMode.KEYWORD)
    outputs = run_query(pipeline, "zorblax kiosk tent", mode="bm25", workspace="mine", top_k=3)
    chunks = outputs["scores"]["documents"]
    assert [c.meta["file_path"] for c in chunks][:1] == ["mine.txt"]
    assert all(list(c.meta["scores"]) == ["bm25"] and c.meta["scores"]["bm25"] is not None for c in chunks)
    assert "theirs.txt" not in {c.meta["file_path"] for c in chunks}
    assert "zorblax" in outputs["prompt_builder"]["prompt"][-1].text


def test_one_pipeline_per_mode_built_once(shared):
    fused = query_pipeline(shared, NO_MODEL, engine=None)
    assert fused.mode is DEFAULT_MODE and fused.for_mode("fused") is fused and fused.for_mode("hybrid") is fused
    keyword = fused.for_mode(RetrievalMode.KEYWORD)
    assert keyword is fused.for_mode("bm25") and keyword.for_mode(RetrievalMode.FUSED) is fused
    assert keyword.setup is fused.setup
    found: list[object] = []
    threads = [threading.Thread(target=lambda: found.append(fused.for_mode("dense"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(pipeline) for pipeline in found}) == 1 and found[0] is keyword.for_mode("dense")


@pytest.mark.parametrize("stage", list(Stage))
def test_retrievers_refuse_top_k_below_one(shared, sessions, stage):
    asked = {"query_embedding": np.eye(DIM)[0].tolist()} if stage.embedded else {"query": "tent kiosk"}
    for store in (shared, sessions):
        retriever = FastRetriever(store, stage, top_k=2)
        assert retriever.run(**asked, workspace="mine", top_k=1)["documents"]
        for top_k in (0, -3):
            with pytest.raises(ValueError, match="top_k"):
                retriever.run(**asked, workspace="mine", top_k=top_k)
        with pytest.raises(ValueError, match="top_k"):
            FastRetriever(store, stage, top_k=0)
    with pytest.raises(UserError, match="top-k"):
        pipeline_inputs("tent", top_k=0)


def test_old_names_parse_and_unknown_ones_name_the_choices():
    assert RetrievalMode.parse("hybrid") is RetrievalMode.FUSED
    assert RetrievalMode.parse(" BM25 ") is RetrievalMode.KEYWORD
    assert all(RetrievalMode.parse(mode.value) is mode and RetrievalMode.parse(mode) is mode for mode in RetrievalMode)
    with pytest.raises(UserError) as refused:
        RetrievalMode.parse("magic")
    message = str(refused.value)
    assert "\n" not in message and "'magic'" in message
    assert message.endswith(", ".join(mode.value for mode in RetrievalMode))


def test_modes_are_data():
    assert all(mode.value != "hybrid" and "hybrid" not in mode.label.lower() for mode in RetrievalMode)
    assert RetrievalMode.choices() == [(mode.label, mode.value) for mode in RetrievalMode]
    for mode in RetrievalMode:
        assert (mode.join is None) == (len(mode.stages) == 1)
        assert mode.join is None or JoinMode.from_str(mode.join)  # a join Haystack's DocumentJoiner knows
        assert mode.shown_scores(rerank=True) == [*mode.score_keys, "rerank"]
    assert RetrievalMode.FUSED.score_keys == ("bm25", "dense", "fused")
    assert RetrievalMode.KEYWORD.score_keys == ("bm25",) and not RetrievalMode.KEYWORD.embedded


@pytest.mark.parametrize("stage", list(Stage))
def test_private_chunks_are_marked_and_stay_with_their_session(shared, sessions, stage):
    asked = {"query_embedding": np.eye(DIM)[0].tolist()} if stage.embedded else {"query": "zorblax kiosk lantern"}
    private = FastRetriever(sessions, stage, top_k=5)
    mine = private.run(**asked, workspace="mine")["documents"]
    assert mine and all(doc.meta["private"] is True for doc in mine)
    assert {doc.meta["file_path"] for doc in mine} <= {"mine.txt", "mine-2.txt"}
    for nobody in (None, "empty", "no-such-workspace"):
        assert private.run(**asked, workspace=nobody)["documents"] == []
    theirs = private.run(**asked, workspace="theirs")["documents"]
    assert {doc.meta["file_path"] for doc in theirs} == {"theirs.txt"}
    assert all("private" not in doc.meta for doc in FastRetriever(shared, stage).run(**asked)["documents"])


def test_private_keyword_scores_count_the_shared_corpus(shared, sessions):
    query = "zorblax kiosk"
    store = sessions.store("mine")
    assert store is not None
    got = FastRetriever(sessions, Stage.KEYWORD).run(query=query, workspace="mine")["documents"]
    joint = store.bm25_corpus_stats(query) + shared.bm25_corpus_stats(query)
    want = store.bm25_retrieval(query, corpus_stats=joint)
    assert [(d.id, d.score) for d in got] == [(d.id, d.score) for d in want]
    alone = FastRetriever(SessionStores(sessions.lookup), Stage.KEYWORD).run(query=query, workspace="mine")
    assert alone["documents"][0].score != got[0].score


def _doc(name: str, score: float, **meta: object) -> Document:
    return Document(id=name, content=name, score=score, meta=meta)


def test_stage_scores_with_one_stage():
    scores = StageScores(["bm25"])
    assert set(scores.__haystack_input__._sockets_dict) == {"ranked", "bm25"}
    ranked = [_doc("a", 7.5), _doc("b", 3.0)]
    out = scores.run(ranked=ranked, bm25=ranked)["documents"]
    assert [d.meta["scores"] for d in out] == [{"bm25": 7.5}, {"bm25": 3.0}]


def test_stage_scores_with_two_stages_and_rerank():
    scores = StageScores(["bm25", "dense", "fused"])
    assert set(scores.__haystack_input__._sockets_dict) == {"ranked", "bm25", "dense", "fused"}
    fused = [_doc("b", 0.03), _doc("a", 0.016)]
    ranked = [_doc("a", 0.9, rerank_score=0.9), _doc("b", 0.2, rerank_score=0.2)]
    out = scores.run(ranked=ranked, bm25=[_doc("a", 7.5)], dense=[_doc("b", 0.61), _doc("a", 0.4)], fused=fused)
    documents = out["documents"]
    assert [d.id for d in documents] == ["a", "b"]  # the last stage's order
    assert documents[0].meta["scores"] == {"bm25": 7.5, "dense": 0.4, "fused": 0.016, "rerank": 0.9}
    assert documents[1].meta["scores"] == {"bm25": None, "dense": 0.61, "fused": 0.03, "rerank": 0.2}
    assert all("rerank_score" not in d.meta for d in documents)
