"""In a real browser: upload a mixed folder, inspect its chunks, ask about it; a second session never sees it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

QUESTION = "Who designed the Zorblax quartz lantern?"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("upload")
    (root / "zorblax.txt").write_text(
        "The Zorblax quartz lantern is sold only at the Fernhollow kiosk. It was designed by Ottoline Brisk.\n"
    )
    (root / "notes.md").write_text("# Kiosk notes\n\nThe Fernhollow kiosk opens at nine and closes at dusk.\n")
    (root / "page.html").write_text(
        "<html><head><style>body{color:red}</style><script>var secretCode = 1;</script></head>"
        "<body><p>Fernhollow kiosk staff wear green aprons.</p></body></html>"
    )
    (root / "broken.txt").write_bytes(bytes(range(256)) * 4)
    (root / "empty.md").write_text("")
    return root


def _rows(page) -> list[list[str]]:
    """The Documents table's cells, row by row (Gradio draws body cells as grid cells, not <td>)."""
    return page.evaluate(
        """() => {
            const rows = [];
            for (const cell of document.querySelectorAll('#doc-table [role=gridcell]')) {
                const r = Number(cell.dataset.row), c = Number(cell.dataset.col);
                (rows[r] = rows[r] || [])[c] = cell.innerText.trim();
            }
            return rows.filter(Boolean);
        }"""
    )


def _ask(page) -> str:
    page.get_by_role("tab", name="Compare").click()
    page.fill("#prompt textarea", QUESTION)
    page.click("#ask")
    page.wait_for_function(
        "() => document.querySelector('#metrics') && document.querySelector('#metrics').innerText.includes('RAG')"
        " && document.querySelectorAll('#chunks .chunk').length > 0",
        timeout=120_000,
    )
    return page.locator("#chunks").inner_text()


def test_upload_inspect_ask_and_stay_private(open_page, folder, shots):
    context, page = open_page()
    page.get_by_role("tab", name="Documents").click()
    # The "Upload a folder" button's input (Gradio renders it next to the button, not inside it).
    page.locator("input[webkitdirectory]").set_input_files(folder)
    page.wait_for_function(
        "() => document.querySelector('#doc-table').innerText.includes('zorblax.txt')"
        " && document.querySelector('#doc-table').innerText.includes('broken.txt')",
        timeout=120_000,
    )
    rows = {row[0]: row for row in _rows(page)}
    assert rows["zorblax.txt"][1] == "indexed" and rows["page.html"][1] == "indexed", rows
    assert rows["broken.txt"][1] == "error" and "binary" in rows["broken.txt"][5], rows
    assert rows["empty.md"][1] == "error" and "empty" in rows["empty.md"][5], rows

    # The chunk preview of the uploaded file, and of the HTML page without its script.
    page.locator("#preview-file input").click()
    page.get_by_role("option", name="page.html (yours)").click()
    page.wait_for_function("() => document.querySelector('#preview').innerText.includes('green aprons')")
    assert "secretCode" not in page.locator("#preview").inner_text()
    shots(page, "2-documents-upload-and-chunks")

    chunks = _ask(page)
    assert "zorblax.txt" in chunks and "your file" in chunks

    # A reload finds the same workspace again.
    page.reload()
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_function("() => document.querySelector('#doc-table').innerText.includes('zorblax.txt')")

    # A second browser session: none of it.
    other_context, other = open_page()
    other_chunks = _ask(other)
    assert "zorblax.txt" not in other_chunks and "your file" not in other_chunks
    other.get_by_role("tab", name="Documents").click()
    assert "zorblax.txt" not in other.locator("#doc-table").inner_text()
    other_context.close()

    # Delete: its chunks are gone from the answers' sources.
    page.locator("#delete-file input").click()
    page.get_by_role("option", name="zorblax.txt", exact=True).click()
    page.click("#delete")
    page.wait_for_function("() => document.querySelector('#upload-status').innerText.includes('Deleted zorblax.txt')")
    assert "zorblax.txt" not in _ask(page)
    context.close()


def test_file_upload_and_chunk_size_warning(open_page, folder):
    context, page = open_page()
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files([folder / "notes.md", folder / "zorblax.txt"])
    page.wait_for_function(
        "() => document.querySelector('#upload-status').innerText.includes('Indexed 2 of 2 files')",
        timeout=120_000,
    )
    assert sorted(row[0] for row in _rows(page)) == ["notes.md", "zorblax.txt"]
    page.get_by_text("Chunking (applies to your files)").click()
    page.fill("#chunk-size input", "400")
    page.locator("#chunk-size input").press("Enter")
    page.wait_for_function("() => document.querySelector('#chunk-warning').innerText.includes('not be embedded')")
    page.fill("#chunk-size input", "64")
    page.locator("#chunk-size input").press("Enter")
    page.wait_for_function("() => document.querySelector('#chunk-warning').innerText.trim() === ''")
    page.click("#reindex")
    page.wait_for_function("() => document.querySelector('#upload-status').innerText.includes('Re-indexed')")
    context.close()
