"""The Documents tab's message after an upload counts that upload's own files, consistently, and names each file
that was not indexed with the reason."""

from __future__ import annotations

from pathlib import Path

from pipelines.ingest import FileReport
from playground.documents import DocumentsService, upload_message


def test_counts_agree_and_failures_are_named():
    reports = [
        FileReport("a.md", "indexed", chunks=40, characters=9000),
        FileReport("b.txt", "indexed", chunks=1, characters=80),
        FileReport("bad.pdf", "error", error="bad.pdf is not a PDF: its content does not match the .pdf extension"),
    ]
    assert upload_message(reports) == (
        "Indexed 2 of 3 files (41 chunks); 1 could not be indexed: "
        "bad.pdf is not a PDF: its content does not match the .pdf extension"
    )
    assert upload_message(reports[1:2]) == "Indexed 1 of 1 file (1 chunk)."


def test_nothing_indexed_and_skipped_files():
    failed = [FileReport(f"{n}.bin", "error", error=f"{n}.bin has an unsupported file type") for n in "xyz"]
    message = upload_message(failed)
    assert message.startswith("Indexed 0 of 3 files; 3 could not be indexed:") and "chunk" not in message
    assert all(f"- {n}.bin has an unsupported file type" in message for n in "xyz")
    skipped = FileReport("copy.md", "skipped", characters=80, error="copy.md is already indexed (same content as a.md)")
    message = upload_message([FileReport("a.md", "indexed", chunks=2), skipped, failed[0]])
    assert message.startswith(
        "Indexed 1 of 3 files (2 chunks); 1 skipped as already indexed and 1 could not be indexed"
    )
    assert "- copy.md is already indexed" in message and "- x.bin has" in message


def test_an_upload_of_three_files_one_bad(runtime, tmp_path: Path):
    documents = DocumentsService(runtime)
    workspace = documents.workspace(None).id
    (tmp_path / "kiosk.txt").write_text("The Fernhollow kiosk opens at nine and closes at dusk.\n")
    (tmp_path / "notes.md").write_text("# Notes\n\nThe Zorblax lantern was designed by Ottoline Brisk.\n")
    (tmp_path / "bad.pdf").write_bytes(b"not a pdf at all" * 10)
    paths = [tmp_path / name for name in ("kiosk.txt", "notes.md", "bad.pdf")]
    done = documents.add(workspace, paths)
    assert done.message.startswith("Indexed 2 of 3 files (2 chunks); 1 could not be indexed: bad.pdf is not a PDF")
    assert [row[:2] for row in done.rows] == [["kiosk.txt", "indexed"], ["notes.md", "indexed"], ["bad.pdf", "error"]]
    # The same files again: counted for this upload only, never the table's earlier rows.
    again = documents.add(workspace, paths[2:])
    assert again.message.startswith("Indexed 0 of 1 file; 1 could not be indexed: bad.pdf")
