"""How long the playground takes to serve: `python -m playground bench startup [--rounds 2] --json`.

Each run starts `python -m playground serve` in a process of its own on a free port and times, from the launch, the
first HTTP 200 of the page and the first question answered through the `compare` API (`gradio_client`, as a script
would ask it). `cold`: a fresh PLAYGROUND_HOME (the index is built, the shipped demo model copied in; offline, so
the default base model falls back to the demo model); `warm`: the same home again (the index is loaded). The runs
take turns, cold then warm, `--rounds` times; the figures are the medians.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.errors import UserError
from playground.config import PROJECT_ROOT

QUESTION = "How much does the Summit 2 tent cost?"
TIMEOUT_S = 600.0
POLL_S = 0.1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _until_ok(url: str, process: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise UserError(f"the server stopped before it answered (exit code {process.returncode})")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(POLL_S)
    raise UserError(f"the server did not answer {url} within {TIMEOUT_S:.0f} s")


def time_start(home: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """One launch: seconds to the page's first HTTP 200 and to the first question answered."""
    from gradio_client import Client

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    environment = {**os.environ, **(env or {}), "PLAYGROUND_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "playground", "serve", "--port", str(port)]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _until_ok(url, process, started + TIMEOUT_S)
        page = time.monotonic() - started
        answer = Client(url, verbose=False).predict(QUESTION, api_name="/compare")
        answered = time.monotonic() - started
        if not answer.get("answers", {}).get("rag"):
            raise UserError("the first question came back without a RAG answer")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    return {"first_http_200_s": round(page, 2), "first_answer_s": round(answered, 2)}


def run_startup_bench(rounds: int = 2, env: dict[str, str] | None = None) -> dict[str, Any]:
    if rounds < 1:
        raise UserError("rounds must be at least 1")
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(rounds):
            home = Path(scratch) / f"home-{index}"
            runs["cold"].append(time_start(home, env))
            runs["warm"].append(time_start(home, env))
    figures = {
        kind: {key: round(statistics.median(run[key] for run in found), 2) for key in found[0]}
        for kind, found in runs.items()
    }
    return {
        **figures,
        "runs": runs,
        "rounds": rounds,
        "method": (
            "python -m playground serve in its own process, offline; seconds from launch to the page's first HTTP "
            "200 and to the first compare API answer (gradio_client); cold: a fresh PLAYGROUND_HOME, warm: the "
            "same home again; medians over the rounds"
        ),
    }
