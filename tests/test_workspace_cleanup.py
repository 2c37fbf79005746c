"""A server that stops removes its workspaces' files, and a start removes any left by a crash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pipelines.embedder import resolve_embedder
from pipelines.indexing import ChunkSettings
from playground.config import PROJECT_ROOT
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_served(server: subprocess.Popen, url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server ended before serving: {server.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail("the server did not serve in time")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_no_uploads_behind(runtime, home, stop):
    """Uses the demo model the session fixture built (same PLAYGROUND_HOME), so the server starts in seconds."""
    port = _free_port()
    env = {
        **os.environ,
        "PLAYGROUND_HOME": str(home),
        "PLAYGROUND_DEMO_SIZE": "tiny",
        "PLAYGROUND_BASE_MODEL": "demo",
        "PLAYGROUND_RERANKER": "none",
        "HF_HUB_OFFLINE": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "playground", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job inherits an ignored SIGINT; the server should see it as Ctrl-C does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_until_served(server, f"http://127.0.0.1:{port}/")
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
