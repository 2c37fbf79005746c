"""A server that stops removes its workspaces' files, and a start removes any left by a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.embedder import resolve_embedder
from pipelines.indexing import ChunkSettings
from playground.workspaces import Workspaces


@pytest.fixture(scope="module")
def embedder():
    return resolve_embedder()


def _ended_process_pid() -> int:
    """The id of a process that has ended and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_close_removes_the_uploaded_files(embedder, tmp_path):
    upload = tmp_path / "notes.txt"
    upload.write_text("The Fernhollow kiosk opens at nine and sells quartz lanterns.")
    workspaces = Workspaces(tmp_path / "ws", embedder, ChunkSettings(254, 50))
    workspace = workspaces.open(None)
    workspaces.upload(workspace, [upload])
    assert (workspace.folder / "notes.txt").exists()
    workspaces.close()
    assert not workspaces.root.exists()
    assert workspaces.store(workspace.id) is None
    workspaces.close()  # twice is harmless


def test_closed_workspaces_write_nothing_more(embedder, tmp_path):
    """Once closed, nothing would remove what they wrote, and another `Workspaces` of the folder may remove it at
    any moment: a late request is refused instead of writing there."""
    workspaces = Workspaces(tmp_path / "ws", embedder, ChunkSettings(254, 50))
    workspaces.close()
    assert workspaces.closed
    with pytest.raises(RuntimeError, match="closed"):
        workspaces.open(None)
    assert not workspaces.root.exists()


def test_a_start_removes_folders_of_ended_processes_only(embedder, tmp_path):
    parent = tmp_path / "ws"
    ended = parent / str(_ended_process_pid()) / "some-workspace"
    alive = parent / str(os.getppid()) / "some-workspace"  # another server on the same home, still running
    reused = parent / str(os.getpid()) / "some-workspace"  # a crashed process that had our pid
    for folder in (ended, alive, reused):
        folder.mkdir(parents=True)
        (folder / "upload.txt").write_text("left behind")
    workspaces = Workspaces(parent, embedder, ChunkSettings(254, 50))
    assert not ended.parent.exists() and not reused.exists()
    assert (alive / "upload.txt").exists()
    workspaces.close()
    assert (alive / "upload.txt").exists()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_no_uploads_behind(serve_process, home, stop):
    """Uses the demo model the session fixture built (same PLAYGROUND_HOME), so the server starts in seconds."""
    server, _ = serve_process()
    try:
        upload = home / "workspaces" / str(server.pid) / "some-workspace" / "upload.txt"
        upload.parent.mkdir(parents=True)
        upload.write_text("a browser's upload")
        server.send_signal(stop)
        _, stderr = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    assert not upload.parent.parent.exists()


# A stop that lands after the server answers but before Gradio's wait loop (which would close the server) leaves
# `launch` by the same KeyboardInterrupt: the server must be closed all the same.
EARLY_STOP = """
import socket, urllib.request
import gradio as gr
from playground.app import launch
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
with gr.Blocks() as app:
    gr.Markdown("hi")
def interrupted():
    urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=5)
    raise KeyboardInterrupt
app.block_thread = interrupted
launch(app, "127.0.0.1", port, False)
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2)
    print("still serving")
except OSError:
    print("stopped")
"""


def test_a_stop_before_gradios_wait_loop_still_closes_the_server(tmp_path):
    env = {**os.environ, "PLAYGROUND_HOME": str(tmp_path)}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", EARLY_STOP], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("stopped"), done.stdout[-500:]
