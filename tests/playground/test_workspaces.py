"""Private workspaces: a session's uploads are retrieved for that session only, and can be inspected,
re-indexed and deleted without stale chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.indexing import ChunkSettings
from playground.compare import CompareOptions, CompareService
from playground.documents import DocumentsService
from playground.workspaces import Workspaces, chunks_of_file

SECRET = (
    "The Zorblax quartz lantern is sold only at the Fernhollow kiosk. It costs 913 dollars and glows teal. "
    "Zorblax lanterns were designed by Ottoline Brisk in the valley workshop."
)
QUESTION = "Who designed the Zorblax quartz lantern?"


@pytest.fixture
def documents(runtime) -> DocumentsService:
    return DocumentsService(runtime)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "zorblax.txt"
    path.write_text(SECRET + "\n\n" + " ".join(["More notes about the kiosk and its opening hours."] * 40))
    return path


def _sources(service: CompareService, workspace: str | None, mode: str = "hybrid") -> list[tuple[str, bool]]:
    options = CompareOptions(arms=("rag", "finetuned"), max_new_tokens=8, retrieval=mode, workspace=workspace)
    return [(c["source"], c["private"]) for c in service.compare(QUESTION, options).chunks]


def test_uploads_are_retrieved_for_their_session_only(documents, service, secret_file):
    mine, other = documents.workspace(None).id, documents.workspace(None).id
    assert mine != other
    rows = documents.upload(mine, [secret_file])
    assert rows[0][:2] == ["zorblax.txt", "indexed"] and rows[0][4] >= 2

    for mode in ("hybrid", "bm25", "dense"):
        assert _sources(service, mine, mode)[0] == ("zorblax.txt", True), mode
        assert "zorblax.txt" not in {source for source, _ in _sources(service, other, mode)}, mode
    assert "zorblax.txt" not in {source for source, _ in _sources(service, None)}
    assert "zorblax.txt" in service.sources(mine)
    assert "zorblax.txt" not in service.sources(other) and "zorblax.txt" not in service.sources(None)
    # The file filter works across both stores.
    options = CompareOptions(arms=("rag", "finetuned"), max_new_tokens=8, workspace=mine, files=("zorblax.txt",))
    assert {c["source"] for c in service.compare(QUESTION, options).chunks} == {"zorblax.txt"}
    # The shared store never received a private chunk.
    assert not chunks_of_file(service.runtime.store, "zorblax.txt")


def test_private_bm25_scores_compare_with_the_shared_store(runtime, documents, secret_file):
    workspace = documents.workspace(None)
    documents.upload(workspace.id, [secret_file])
    query = "Zorblax quartz lantern Fernhollow"
    own = workspace.store.bm25_retrieval(query, top_k=1)[0].score
    stats = workspace.store.bm25_corpus_stats(query) + runtime.store.bm25_corpus_stats(query)
    joint = workspace.store.bm25_retrieval(query, top_k=1, corpus_stats=stats)[0].score
    # Alone, a tiny corpus gives every word a low IDF; against the union the rare words weigh as they should.
    assert joint > own * 1.5


def test_delete_leaves_no_stale_chunks(documents, service, secret_file):
    workspace_id = documents.workspace(None).id
    documents.upload(workspace_id, [secret_file])
    removed, rows = documents.delete(workspace_id, "zorblax.txt")
    assert removed >= 2 and rows == []
    workspace = documents.workspace(workspace_id)
    assert workspace.store.count_documents() == 0
    assert not (workspace.folder / "zorblax.txt").exists()
    assert "zorblax.txt" not in {source for source, _ in _sources(service, workspace_id)}
    with pytest.raises(ValueError, match="not one of your files"):
        documents.delete(workspace_id, "zorblax.txt")


def test_reindex_with_new_chunk_settings(documents, secret_file):
    workspace_id = documents.workspace(None).id
    documents.upload(workspace_id, [secret_file])
    before = len(documents.preview(workspace_id, "mine:zorblax.txt"))
    rows = documents.reindex(workspace_id, 24, 4)  # smaller than the default: more chunks
    after = documents.preview(workspace_id, "mine:zorblax.txt")
    assert len(after) > before and rows[0][4] == len(after)
    assert documents.workspace(workspace_id).chunking == ChunkSettings(24, 4)
    assert documents.workspace(workspace_id).store.count_documents() == len(after)
    with pytest.raises(ValueError, match="overlap"):
        documents.reindex(workspace_id, 64, 64)


def test_a_failed_new_version_keeps_the_indexed_one(documents, secret_file, tmp_path):
    workspace_id = documents.workspace(None).id
    documents.upload(workspace_id, [secret_file])
    chunks = documents.workspace(workspace_id).store.count_documents()
    empty = tmp_path / "again" / "zorblax.txt"
    empty.parent.mkdir()
    empty.write_text("")
    rows = documents.upload(workspace_id, [empty])
    assert rows[0][1] == "error" and "empty" in rows[0][5] and "kept" in rows[0][5]
    assert rows[0][4] == chunks == documents.workspace(workspace_id).store.count_documents()


def test_bad_files_are_reported_and_the_rest_indexed(documents, secret_file, tmp_path):
    binary = tmp_path / "data.txt"
    binary.write_bytes(bytes(range(256)) * 8)
    rows = documents.upload(documents.workspace(None).id, [binary, secret_file])
    by_name = {row[0]: row for row in rows}
    assert by_name["data.txt"][1] == "error" and by_name["data.txt"][5]
    assert by_name["zorblax.txt"][1] == "indexed"


def test_chunk_warnings(documents):
    limit = documents.embedder_tokens
    assert documents.chunk_warning(limit, 50) == ""
    assert "would not be embedded" in documents.chunk_warning(limit + 1, 50)
    assert "overlap" in documents.chunk_warning(100, 100)
    assert "between" in documents.chunk_warning(5, 0)


def test_ids_and_idle_workspaces(runtime, tmp_path, secret_file):
    workspaces = Workspaces(tmp_path / "ws", runtime.embedder, ChunkSettings(254, 50), idle_s=0)
    assert workspaces.open("../../etc").id != "../../etc"
    first = workspaces.open(None)
    workspaces.upload(first, [secret_file])
    assert (first.folder / "zorblax.txt").exists()
    workspaces.open(None)  # opening another drops the idle one with its files
    assert workspaces.store(first.id) is None and not first.folder.exists()


def test_a_full_workspace_refuses_more_and_keeps_what_it_has(runtime, tmp_path, secret_file):
    workspaces = Workspaces(tmp_path / "ws", runtime.embedder, ChunkSettings(254, 50), max_chunks=1)
    workspace = workspaces.open(None)
    workspaces.upload(workspace, [secret_file])
    held = workspace.store.count_documents()
    other = tmp_path / "other.txt"
    other.write_text("Another file about the Fernhollow kiosk and its lanterns.")
    with pytest.raises(ValueError, match="the most one browser may keep"):
        workspaces.upload(workspace, [other])
    assert workspace.store.count_documents() == held and workspace.files() == ["zorblax.txt"]
