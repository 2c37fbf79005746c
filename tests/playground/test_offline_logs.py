"""Offline, a start asks the hub once, says so in one line, and names each model it goes without in one line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import huggingface_hub
import pytest

from adapters import resolver
from adapters.resolver import resolve_model
from pipelines.embedder import resolve_embedder
from pipelines.reranker import resolve_reranker
from playground.config import PROJECT_ROOT

OFFLINE_LINE = "offline: the Hugging Face Hub is not reachable; using local files only"


def _demo() -> tuple[Path, str]:
    return Path("/demo"), "demo-model"


class _FailingSession:
    """Stands in for the hub's HTTP session on a machine without network."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def head(self, url: str, **kwargs: object) -> None:
        self.requests.append(url)
        raise ConnectionError("no network")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_FailingSession, list[bool]]]:
    """Hub offline by network, not by HF_HUB_OFFLINE; records the probes and every snapshot_download's mode."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    session = _FailingSession()
    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: session)
    local_only: list[bool] = []
    download = huggingface_hub.snapshot_download

    def recorded(repo_id: str, **kwargs: object) -> str:
        local_only.append(bool(kwargs.get("local_files_only")))
        return download(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", recorded)
    resolver._probe_hub.cache_clear()
    resolver._say_offline.cache_clear()
    yield session, local_only
    resolver._probe_hub.cache_clear()
    resolver._say_offline.cache_clear()


def test_an_unreachable_hub_is_probed_once_and_never_asked_again(no_network, caplog):
    session, local_only = no_network
    with caplog.at_level(logging.WARNING):
        model = resolve_model("some-org/not-cached-model-xyz", _demo)
        reranker = resolve_reranker("cross-encoder/not-cached-reranker-xyz")
        with pytest.raises(ValueError, match="embedder some-org/not-cached-embedder-xyz: not in the local cache"):
            resolve_embedder("some-org/not-cached-embedder-xyz")

    assert len(session.requests) == 1  # one probe for the three models
    assert local_only and all(local_only)  # only the local cache was looked at
    hub_lines = [r.getMessage() for r in caplog.records if r.name == "adapters.resolver"]
    assert hub_lines[0] == OFFLINE_LINE and hub_lines.count(OFFLINE_LINE) == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "pipelines.reranker"]
    assert model.source == "demo" and model.note.endswith("is not in the local cache and the hub is unreachable")
    assert not reranker.available
    assert messages[-1] == (
        "reranker cross-encoder/not-cached-reranker-xyz: not in the local cache and the hub is unreachable; "
        "the rerank option is hidden"
    )
    assert all("\n" not in m for m in messages)


def test_a_reranker_that_fails_to_load_says_so_in_one_line(tmp_path, caplog):
    broken = tmp_path / "broken-reranker"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="pipelines.reranker"):
        choice = resolve_reranker(str(broken))
    messages = [r.getMessage() for r in caplog.records if r.name == "pipelines.reranker"]
    assert not choice.available
    assert len(messages) == 1 and "\n" not in messages[0]
    assert messages[0].startswith(f"reranker {broken}: could not be loaded (")
    assert messages[0].endswith("the rerank option is hidden")


class _Unavailable(BaseHTTPRequestHandler):
    """A hub endpoint that answers every request with 503 and counts them."""

    requests: ClassVar[list[str]] = []

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:  # keep the test's output clean
        pass


def test_an_offline_start_says_so_once_and_asks_the_hub_once(runtime, home, tmp_path):
    """`prepare` without HF_HUB_OFFLINE against a hub that does not serve: one request, one line each, no traceback."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "PLAYGROUND_BASE_MODEL"}},
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache: nothing is found locally
        "PLAYGROUND_HOME": str(home),  # the session's demo model and index: nothing is built again
        "PLAYGROUND_DEMO_SIZE": "tiny",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "playground", "prepare"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr[-2000:]
    assert _Unavailable.requests == ["HEAD /"]
    lines = done.stderr.splitlines()
    assert lines.count(OFFLINE_LINE) == 1
    assert [line for line in lines if line.startswith("reranker ")] == [
        "reranker cross-encoder/ms-marco-MiniLM-L-6-v2: not in the local cache and the hub is unreachable; "
        "the rerank option is hidden"
    ]
    assert "Traceback" not in done.stderr and "An error happened" not in done.stderr
