"""Uploads live only in the browser's workspace: Gradio's upload cache gives each back to nobody (over plain HTTP,
without cookies), Delete removes every copy, and a stopped server leaves none on disk for the next one to serve."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pipelines.embedder import resolve_embedder
from pipelines.indexing import ChunkSettings
from playground.workspaces import Workspaces


def _status(url: str, path: str | Path) -> tuple[int, bytes]:
    """What a stranger gets for a file path: a plain GET, no cookies."""
    address = f"{url}/gradio_api/file={urllib.parse.quote(str(path), safe='/')}"
    try:
        with urllib.request.urlopen(address, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _assert_not_served(url: str, path: str | Path, secret: str) -> None:
    status, body = _status(url, path)
    assert status != 200 and secret.encode() not in body, (status, path)


def _secret_file(folder: Path, prefix: str = "privacy") -> tuple[Path, str]:
    secret = f"Quillfeather-{secrets.token_hex(6)}"
    path = folder / f"{prefix}-{secret.lower()}.txt"
    path.write_text(f"The kiosk's night code is {secret}. Only its owner may read this file.\n")
    return path, secret


def _open(browser, url: str, tab: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#prompt textarea")
    page.get_by_role("tab", name=tab).click()
    return context, page


def _upload(page, selector: str, files: Path | list[Path]) -> list[Path]:
    """Drives the page's file input; returns where Gradio cached the files (its upload answer)."""

    def is_upload(response) -> bool:
        return response.request.method == "POST" and urllib.parse.urlparse(response.url).path.endswith("/upload")

    with page.expect_response(is_upload) as answer:
        page.locator(selector).set_input_files(files)
    return [Path(path) for path in answer.value.json()]


def _wait_for(page, elem_id: str, text: str) -> None:
    page.wait_for_function(f"() => document.querySelector('#{elem_id}').innerText.includes({text!r})", timeout=45_000)


def _assert_gone_from_cache(url: str, cached: list[Path], secret: str) -> None:
    for path in cached:
        assert not path.exists() and not path.parent.exists(), path  # the file and Gradio's folder for it
        _assert_not_served(url, path, secret)


def _copies(folder: Path, name: str) -> list[Path]:
    return [path for path in folder.rglob(name) if path.is_file()]


def test_a_failed_upload_leaves_nothing_in_the_cache_and_other_files_alone(tmp_path):
    workspaces = Workspaces(tmp_path / "ws", resolve_embedder(), ChunkSettings(254, 50), max_chunks=0)
    workspace = workspaces.open(None)
    cache = tmp_path / "cache"
    shared = cache / ("a" * 64)  # Gradio's folder for one content, here uploaded under two names
    shared.mkdir(parents=True)
    upload, twin = shared / "notes.txt", shared / "twin.txt"
    for path in (upload, twin):
        path.write_text("The Fernhollow kiosk opens at nine.")
    outside = tmp_path / "outside.txt"
    outside.write_text("Not an upload: never moved.")
    with (
        pytest.raises(ValueError, match="the most one browser may keep"),
        workspaces.taken(workspace, [upload, outside], cache) as taken,
    ):
        assert taken[0].is_relative_to(workspace.inbox) and taken[1] == outside and not upload.exists()
        workspaces.upload(workspace, taken)
    assert not upload.exists() and twin.exists() and outside.exists()
    assert not [path for path in workspace.inbox.rglob("*") if path.is_file()]
    kept = workspaces.keep(workspace, twin, cache)
    assert kept.read_text().startswith("The Fernhollow") and not shared.exists()
    workspaces.close()
    assert not workspaces.root.exists()


@pytest.mark.browser
def test_a_document_upload_is_never_served_and_delete_removes_every_copy(browser, url, home, tmp_path):
    path, secret = _secret_file(tmp_path)
    context, page = _open(browser, url, "Documents")
    cached = _upload(page, "#upload input[type=file]", path)
    _wait_for(page, "upload-status", "Indexed 1 of 1 file")
    assert [p.name for p in cached] == [path.name]
    _assert_gone_from_cache(url, cached, secret)

    kept = _copies(home / "workspaces", path.name)
    assert len(kept) == 1 and kept[0].parent.parent.name == str(os.getpid()), kept  # the workspace's copy only
    _assert_not_served(url, kept[0], secret)
    # Nor through the cache folder, by a path that climbs out of it.
    climb = Path(os.path.relpath(kept[0], cached[0].parent.parent))
    _assert_not_served(url, f"{cached[0].parent.parent}/{climb}", secret)
    # The preview shows chunks, never a link to the file.
    page.locator("#preview-file input").click()
    page.get_by_role("option", name=f"{path.name} (yours)").click()
    _wait_for(page, "preview", secret)
    assert "gradio_api/file" not in page.locator("#preview").inner_html()

    page.locator("#delete-file input").click()
    page.get_by_role("option", name=path.name, exact=True).click()
    page.click("#delete")
    _wait_for(page, "upload-status", f"Deleted {path.name}")
    assert not _copies(home, path.name) and not _copies(cached[0].parent.parent, path.name)
    _assert_not_served(url, kept[0], secret)
    context.close()


@pytest.mark.browser
def test_folder_and_dataset_uploads_leave_the_cache_at_once(browser, url, home, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    first, secret = _secret_file(folder, "first")
    second, other_secret = _secret_file(folder, "second")
    context, page = _open(browser, url, "Documents")
    cached = _upload(page, "input[webkitdirectory]", folder)
    _wait_for(page, "upload-status", "Indexed 2 of 2 files")
    _assert_gone_from_cache(url, [p for p in cached if p.name == first.name], secret)
    _assert_gone_from_cache(url, [p for p in cached if p.name == second.name], other_secret)

    marker = f"Quillfeather-{secrets.token_hex(6)}"  # content of its own: Gradio's folder for it is named by its hash
    dataset = tmp_path / f"voice-{secrets.token_hex(4)}.jsonl"
    example = '{"messages": [{"role": "user", "content": "Code %d?"}, {"role": "assistant", "content": "%s"}]}\n'
    dataset.write_text("".join(example % (i, marker) for i in range(3)))
    page.get_by_role("tab", name="Fine-tune").click()
    cached = _upload(page, "#ft-data input[type=file]", dataset)
    _wait_for(page, "ft-verdict", f"{dataset.name} is ready")
    _assert_gone_from_cache(url, cached, marker)
    kept = _copies(home / "workspaces", dataset.name)
    assert len(kept) == 1 and kept[0].parent.parent.name.endswith(".inbox"), kept  # for a launch, until it expires
    _assert_not_served(url, kept[0], marker)
    context.close()


def _stop(server: subprocess.Popen) -> str:
    server.send_signal(signal.SIGTERM)
    try:
        _, stderr = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
    return stderr


def _ended_process_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.browser
def test_a_stopped_server_leaves_nothing_and_the_next_serves_nothing(serve_process, browser, home, tmp_path):
    path, secret = _secret_file(tmp_path)
    server, url = serve_process()
    try:
        context, page = _open(browser, url, "Documents")
        cached = _upload(page, "#upload input[type=file]", path)
        _wait_for(page, "upload-status", "Indexed 1 of 1 file")
        context.close()
        root = home / "workspaces" / str(server.pid)
        assert cached[0].is_relative_to(root / "uploads")  # Gradio's cache is the server's own
        _assert_gone_from_cache(url, cached, secret)
        kept = _copies(root, path.name)
        assert len(kept) == 1
        _assert_not_served(url, kept[0], secret)
    finally:
        _stop(server)
    assert not root.exists()

    # A crashed server's leftovers, a cached upload among them: the next start removes them.
    crashed = home / "workspaces" / str(_ended_process_pid())
    left = crashed / "uploads" / ("0" * 64) / path.name
    left.parent.mkdir(parents=True)
    left.write_text(path.read_text())
    server, url = serve_process()
    try:
        assert not crashed.exists()
        for gone in (cached[0], kept[0], left):
            _assert_not_served(url, gone, secret)
    finally:
        _stop(server)
    assert not _copies(home, path.name)
