"""Twenty people at once, each through `gradio_client` with a document of their own: every comparison is answered, or
refused at once with "busy, try again in N s" once the wait is full; nobody's answer ever reads another's chunks; the
latencies are printed as p50 and p95."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import pytest

from playground.runtime import Runtime

SESSIONS = 20
TOKENS = 12
BUSY = "The playground is busy ("


@dataclass
class Session:
    index: int
    code: str  # a made-up product name found only in this session's document
    workspace: str = ""
    seconds: float = 0.0
    result: dict | None = None
    error: str = ""

    @property
    def file(self) -> str:
        return f"session-{self.index:02d}.md"


def _serve(app: gr.Blocks) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def serve(runtime: Runtime) -> Iterator:
    """The whole app with the given wait and concurrency limits, served on a free port."""
    from playground.app import build_app

    apps: list[gr.Blocks] = []

    def start(queue_size: int, concurrency: int, tokens: int = TOKENS) -> str:
        settings = runtime.settings.with_overrides(
            queue_size=queue_size, concurrency=concurrency, min_new_tokens=tokens, max_new_tokens=tokens
        )
        apps.append(build_app(replace(runtime, settings=settings)))
        return _serve(apps[-1])

    yield start
    for app in apps:
        app.close()


def _sessions(url: str, folder: Path, tokens: int = TOKENS) -> list[Session]:
    """Each session uploads its own document with its own client, then all ask at the same moment."""
    from gradio_client import Client, handle_file

    sessions = [Session(index, f"Quorvex-{index:02d}") for index in range(SESSIONS)]
    ready = threading.Barrier(SESSIONS)

    def run(session: Session) -> None:
        client = Client(url, verbose=False)  # a session of its own
        document = folder / session.file
        document.write_text(f"# {session.code} lantern\n\nThe {session.code} lantern costs ${100 + session.index}.\n")
        try:
            session.workspace = client.predict([handle_file(str(document))], api_name="/upload")["workspace"]
        finally:
            ready.wait(timeout=300)
        began = time.perf_counter()
        try:
            session.result = client.predict(
                f"What does the {session.code} lantern cost?",
                workspace=session.workspace,
                max_new_tokens=tokens,
                api_name="/compare",
            )
        except Exception as error:  # a refusal, checked below; anything else fails the test there
            session.error = str(error)
        session.seconds = time.perf_counter() - began

    threads = [threading.Thread(target=run, args=(session,)) for session in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    return sessions


def _check_privacy(sessions: list[Session]) -> None:
    codes = {session.code for session in sessions}
    for session in sessions:
        if session.result is None:
            continue
        chunks = session.result["chunks"]
        private = [chunk for chunk in chunks if chunk["private"]]
        assert private and all(chunk["source"] == session.file for chunk in private), (session.file, chunks)
        assert session.code in private[0]["content"]
        read = " ".join(chunk["content"] for chunk in chunks)
        assert not {code for code in codes - {session.code} if code in read}, f"{session.file} read another's chunks"
        assert all(answer and answer.get("text") is not None for answer in session.result["answers"].values())


def _report(label: str, sessions: list[Session], capsys: pytest.CaptureFixture[str]) -> None:
    seconds = sorted(session.seconds for session in sessions if session.result is not None)
    refused = [session for session in sessions if session.error]
    p95 = seconds[min(len(seconds) - 1, round(0.95 * (len(seconds) - 1)))]
    slowest_refusal = f", refused within {max(s.seconds for s in refused):.2f} s" if refused else ""
    with capsys.disabled():
        print(
            f"\n{label}: {len(seconds)} of {SESSIONS} answered, p50 {statistics.median(seconds):.1f} s, "
            f"p95 {p95:.1f} s; {len(refused)} refused{slowest_refusal}"
        )


def test_twenty_sessions_with_their_own_documents_are_all_answered(serve, tmp_path, capsys) -> None:
    url = serve(queue_size=16, concurrency=8)  # the defaults: 8 run, 16 wait
    sessions = _sessions(url, tmp_path)
    assert [session.error for session in sessions if session.error] == []
    _check_privacy(sessions)
    _report("20 sessions, 8 at once, 16 may wait", sessions, capsys)


def test_past_the_wait_limit_a_session_is_refused_at_once_and_the_others_answered(serve, tmp_path, capsys) -> None:
    # Room for 6 of the 20; each answer is long enough that all the others arrive while those 6 hold their room.
    url = serve(queue_size=4, concurrency=2, tokens=64)
    sessions = _sessions(url, tmp_path, tokens=64)
    answered = [session for session in sessions if session.result is not None]
    refused = [session for session in sessions if session.error]
    assert len(answered) + len(refused) == SESSIONS
    assert all(BUSY in s.error and "try again in about" in s.error for s in refused), [s.error for s in refused]
    assert len(answered) >= 6 and refused  # at least the six with room; the rest come while those still hold it
    assert max(s.seconds for s in refused) < min(s.seconds for s in answered)  # refused before any answer came
    _check_privacy(sessions)
    _report("20 sessions, 2 at once, 4 may wait", sessions, capsys)
