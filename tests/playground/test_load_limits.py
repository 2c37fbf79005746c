"""Refusing clearly under load: a burst over the wait limit is refused at once; an oversized upload never lands."""

from __future__ import annotations

import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import httpx
import pytest

from pipelines.ingest import IngestLimits
from playground.config import Settings
from playground.load import LoadLimits, RecentDurations, busy_message, retry_after
from playground.runtime import Runtime

BURST = 8
TOKENS = 256  # per arm, every time: a comparison lasts seconds, so the burst all comes while one runs
BUSY = re.compile(r"The playground is busy \((\d+) requests? waiting\); try again in about (\d+) s")


def _serve(app: gr.Blocks, **options: object) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **options)
    return f"http://127.0.0.1:{port}"


# -- the estimate ------------------------------------------------------------------------------------------------


def test_the_wait_estimate_follows_recent_durations() -> None:
    durations = RecentDurations(window=3, default=10.0)
    assert durations.mean() == 10.0  # nothing finished yet: the default
    for seconds in (100.0, 2.0, 4.0, 6.0):  # the first falls out of the window
        durations.add(seconds)
    assert durations.mean() == 4.0
    limits = LoadLimits(queue_size=16, concurrency=2)
    assert retry_after(16, limits, durations.mean()) == 36  # 16 waiting + 2 running, two at a time, 4 s each
    assert retry_after(0, limits, 0.1) == 1
    assert not LoadLimits(queue_size=0, concurrency=1).full(0)  # no wait allowed: a free slot still takes one
    assert LoadLimits(queue_size=0, concurrency=1).full(1)
    assert busy_message(1, 5) == "The playground is busy (1 request waiting); try again in about 5 s"


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYGROUND_QUEUE_SIZE", "3")
    monkeypatch.setenv("PLAYGROUND_CONCURRENCY", "1")
    assert LoadLimits.of(Settings()) == LoadLimits(queue_size=3, concurrency=1)
    monkeypatch.delenv("PLAYGROUND_QUEUE_SIZE")
    monkeypatch.delenv("PLAYGROUND_CONCURRENCY")
    assert LoadLimits.of(Settings()) == LoadLimits(queue_size=16, concurrency=8)
    with pytest.raises(ValueError, match="PLAYGROUND_CONCURRENCY must be 1 or more"):
        LoadLimits.of(Settings(concurrency=0))


# -- a burst of comparisons --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float
    result: object = None
    error: Exception | None = None


@pytest.fixture(scope="module")
def busy_app(runtime: Runtime) -> Iterator[tuple[gr.Blocks, str]]:
    """The whole app with room for one running comparison and two waiting; each comparison takes a while."""
    from playground.app import build_app

    settings = runtime.settings.with_overrides(queue_size=2, concurrency=1, min_new_tokens=TOKENS)
    app = build_app(replace(runtime, settings=settings))
    url = _serve(app)
    yield app, url
    app.close()


def _recorded(durations: RecentDurations, count: int) -> bool:
    """Whether `count` durations are in: the server records one just after it has sent that answer."""
    deadline = time.monotonic() + 10
    while len(durations) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(durations) == count


def _burst(url: str) -> list[Outcome]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    start = threading.Barrier(BURST)
    outcomes: list[Outcome] = []

    def ask(n: int) -> None:
        start.wait()
        began = time.perf_counter()
        try:
            question = f"How much does the Summit {n} tent cost?"
            result = client.predict(question, max_new_tokens=TOKENS, api_name="/compare")
            outcomes.append(Outcome(time.perf_counter() - began, result=result))
        except Exception as error:
            outcomes.append(Outcome(time.perf_counter() - began, error=error))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return outcomes


def test_a_burst_over_the_wait_limit_is_refused_at_once(
    busy_app: tuple[gr.Blocks, str], capsys: pytest.CaptureFixture[str]
) -> None:
    app, url = busy_app
    ran_before = len(app._queue.durations)
    outcomes = _burst(url)
    answered = [o for o in outcomes if o.error is None]
    refused = [o for o in outcomes if o.error is not None and BUSY.search(str(o.error))]
    others = [o.error for o in outcomes if o.error is not None and not BUSY.search(str(o.error))]
    assert len(outcomes) == BURST and not others
    assert answered and refused
    assert all(isinstance(o.result, dict) and o.result.get("answers") for o in answered)
    # The wait never holds more than its two: every refusal counted them, and came before any answer did.
    assert {BUSY.search(str(o.error)).group(1) for o in refused} == {"2"}  # type: ignore[union-attr]
    assert max(o.seconds for o in refused) < min(o.seconds for o in answered)
    assert _recorded(app._queue.durations, ran_before + len(answered))  # the estimate learns from what ran

    seconds = sorted(o.seconds for o in answered)
    p50 = statistics.median(seconds)
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    with capsys.disabled():
        print(
            f"\nburst of {BURST}: {len(answered)} answered (p50 {p50:.1f} s, p95 {p95:.1f} s, "
            f"first {seconds[0]:.1f} s), {len(refused)} refused within {max(o.seconds for o in refused):.2f} s: "
            f"{refused[0].error}"
        )


def test_refusals_estimate_the_wait_from_the_comparisons_that_ran(busy_app: tuple[gr.Blocks, str]) -> None:
    from gradio_client import Client

    app, url = busy_app
    ran_before = len(app._queue.durations)
    Client(url, verbose=False).predict("How much does the Summit 2 tent cost?", api_name="/compare")
    assert _recorded(app._queue.durations, ran_before + 1)
    mean = app._queue.durations.mean()
    outcomes = _burst(url)
    quoted = {BUSY.search(str(o.error)).group(2) for o in outcomes if o.error is not None}  # type: ignore[union-attr]
    # Every refusal comes before this burst's first comparison ends, so each used the mean measured before it.
    assert quoted == {str(retry_after(2, LoadLimits(queue_size=2, concurrency=1), mean))}


# -- uploads -----------------------------------------------------------------------------------------------------


def _stored(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_an_upload_over_the_limit_is_refused_before_it_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))  # read when the server app is made: a cache of this test's own
    limit = 64 * 1024
    with gr.Blocks() as app:
        gr.File()
    url = _serve(app.queue(), max_file_size=limit)
    try:
        too_big = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.txt", b"x" * (limit + 1))})
        assert too_big.status_code == 413
        assert "maximum allowed size" in too_big.text
        assert _stored(cache) == []
        fits = httpx.post(f"{url}/gradio_api/upload", files={"files": ("small.txt", b"x" * limit)})
        assert fits.status_code == 200  # the same cache does take a file within the limit
        assert [path.name for path in _stored(cache)] == ["small.txt"]
    finally:
        app.close()


def test_the_app_is_served_with_the_documents_upload_limit(monkeypatch: pytest.MonkeyPatch, in_process_launch) -> None:
    from playground.app import launch

    options: dict[str, object] = {}
    app = gr.Blocks()
    monkeypatch.setattr(app, "launch", lambda **given: options.update(given))  # what Gradio would be asked for
    launch(app, "127.0.0.1", 7860, False)
    assert options["max_file_size"] == IngestLimits().max_bytes == 50 * 1024 * 1024
    launch(app, "127.0.0.1", 7860, False, 3 * 1024 * 1024)  # PLAYGROUND_MAX_UPLOAD_MB=3, as serve passes it
    assert options["max_file_size"] == 3 * 1024 * 1024
