"""Fixtures: a tiny demo model built from the sample data in seconds, shared by the session."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest

# Tests never reach for the hub: everything they load is built here or ships in a package.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from playground.compare import CompareService
from playground.config import PROJECT_ROOT, Settings
from playground.runtime import Runtime, start


def _hashed_words(texts):
    vectors = np.zeros((len(texts), 512))
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9$]+", text.lower()):
            vectors[row, zlib.crc32(word.encode()) % 512] += 1
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@pytest.fixture(scope="session")
def word_embedder():
    """A stand-in for the embedder, texts → unit vectors in milliseconds: hashed word counts."""
    return _hashed_words


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("playground-home")


@pytest.fixture(scope="session")
def settings(home: Path) -> Settings:
    return Settings(
        home=home, base_model="Qwen/Qwen2.5-0.5B-Instruct", demo_size="tiny", max_new_tokens=16, min_new_tokens=6
    )


_SESSION_RUNTIME = pytest.StashKey[Runtime]()


@pytest.fixture(scope="session")
def runtime(settings: Settings, pytestconfig: pytest.Config) -> Runtime:
    made = pytestconfig.stash[_SESSION_RUNTIME] = start(settings)
    return made


@pytest.fixture(autouse=True)
def _session_workspaces_stay_open(pytestconfig: pytest.Config):
    """Fails the test that closed the session runtime's workspaces: the served page's uploads would go on being written
    under a folder that any other `Workspaces` of this home, once collected, removes at a moment of its own."""
    yield
    made = pytestconfig.stash.get(_SESSION_RUNTIME, None)
    if made is not None and made.workspaces.closed:
        del pytestconfig.stash[_SESSION_RUNTIME]  # said once, by the test that did it
        pytest.fail("this test closed the session runtime's workspaces (see the `in_process_launch` fixture)")


@pytest.fixture
def in_process_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """`playground.app.launch` called in the test process: its stop would close every open `Workspaces` of the
    process, the session runtime's too."""
    from playground import workspaces

    monkeypatch.setattr(workspaces, "close_all", lambda: None)


@pytest.fixture(scope="session")
def service(runtime: Runtime) -> CompareService:
    return CompareService(runtime)


@pytest.fixture
def fake_openai():
    """An OpenAI-compatible server speaking as vLLM does (tests/fake_openai_server.py), on a random local port."""
    from fake_openai_server import FakeOpenAIServer

    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def run_cli():
    """`python -m playground ARGS` on the session's tiny demo model (pass the session's home: it starts in seconds)."""

    def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        env = {
            **os.environ,
            "PLAYGROUND_HOME": str(home),
            "PLAYGROUND_DEMO_SIZE": "tiny",
            "PLAYGROUND_MAX_NEW_TOKENS": "12",
            "PLAYGROUND_MIN_NEW_TOKENS": "6",
            "HF_HUB_OFFLINE": "1",
        }
        env.pop("PLAYGROUND_BASE_MODEL", None)
        return subprocess.run(
            [sys.executable, "-m", "playground", *args],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            input=stdin,
        )

    return run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def serve_process(home: Path, runtime: Runtime):
    """Starts `python -m playground serve` on the demo model the session built (same home: it starts in seconds)
    and returns the process and its URL once it answers. The caller stops it."""

    def serve() -> tuple[subprocess.Popen, str]:
        port = _free_port()
        env = {
            **os.environ,
            "PLAYGROUND_HOME": str(home),
            "PLAYGROUND_DEMO_SIZE": "tiny",
            "PLAYGROUND_BASE_MODEL": "demo",
            "PLAYGROUND_RERANKER": "none",
            "HF_HUB_OFFLINE": "1",
        }
        env.pop("GRADIO_TEMP_DIR", None)
        server = subprocess.Popen(
            [sys.executable, "-m", "playground", "serve", "--port", str(port)],
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # A shell's background job inherits an ignored SIGINT; the server should see it as Ctrl-C does.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"the server ended before serving: {server.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(url, timeout=1):
                    return server, url
            except OSError:
                time.sleep(0.3)
        server.kill()
        pytest.fail("the server did not serve in time")

    return serve


@pytest.fixture(scope="session")
def url(runtime: Runtime):
    """The page, served from the session's runtime."""
    from playground.app import build_app
    from playground.ui.render import CSS

    app = build_app(runtime)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    yield f"http://127.0.0.1:{port}"
    app.close()


@pytest.fixture
def open_page(browser, url):
    """Opens the page in a new browser context (a session of its own), on the tab named when given, once it has
    loaded and its events are wired; returns (context, page)."""

    def open_(tab: str | None = None):
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#prompt textarea")
        if tab:
            _choose_tab(page, tab)
        return context, page

    return open_


@pytest.fixture
def choose_tab():
    """`choose_tab(page, tab)`: clicks the tab until the page shows it selected."""
    return _choose_tab


def _choose_tab(page, tab: str, tries: int = 3) -> None:
    """Clicks the tab until the page shows it selected: a click that lands before the page's events are wired is
    lost (a CI run then waited 30 s for the Evaluate tab's upload input, which was never drawn)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    selected = f"[role=tab][aria-selected=true]:has-text({tab!r})"
    for attempt in range(tries):
        page.get_by_role("tab", name=tab).click()
        try:
            page.wait_for_selector(selected, timeout=10_000)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise


@pytest.fixture
def upload():
    """`upload(page, elem_id, path)`: gives a file to a File component's input and waits for its name on the page.

    On cold CI runs the name sometimes never came, not even after 240 s, while every later wait of the same page
    passed at once: the file was lost, not slow. So it is given again, and if it never shows, the failure says what
    the page sent and heard about it."""

    def upload_(page, elem_id: str, path: Path, tries: int = 3) -> None:
        heard: list[str] = []
        page.on(
            "response", lambda r: heard.append(f"{r.status} {r.request.method} {r.url}") if "upload" in r.url else None
        )
        page.on("requestfailed", lambda r: heard.append(f"failed {r.url}: {r.failure}"))
        page.on("console", lambda m: heard.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        # The name may be drawn in parts (stem and extension on lines of their own): compared without white space.
        shown = f"() => document.querySelector('#{elem_id}').innerText.replace(/\\s+/g, '').includes({path.name!r})"
        for _ in range(tries):
            if page.evaluate(shown):  # an earlier try's file landed late: the component shows it, with no input left
                return
            try:
                page.wait_for_selector(f"#{elem_id} input[type=file]", state="attached", timeout=30_000)
            except Exception:  # a timeout: tried again (the earlier file may still land), reported when all fail
                heard.append(f"no file input after 30 s: {page.locator(f'#{elem_id}').inner_text()!r}")
                continue
            page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
            try:
                page.wait_for_function(shown, timeout=60_000)
                return
            except Exception:  # a timeout: tried again, and reported when every try fails
                heard.append(f"not shown after 60 s: {page.locator(f'#{elem_id}').inner_text()!r}")
        if page.evaluate(shown):
            return
        pytest.fail(f"{path.name} never showed in #{elem_id}:\n" + "\n".join(heard))

    return upload_


@pytest.fixture
def shots(tmp_path: Path):
    """Saves a full-page screenshot as NAME.png under $PLAYGROUND_SCREENSHOTS when set (CI keeps that folder as an
    artifact: what each tab's main path looked like), else under the test's tmp_path."""
    folder = Path(os.environ.get("PLAYGROUND_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, f"the screenshot {path.name} is blank"
        return path

    return shot


@pytest.fixture
def download():
    """`download(page, selector, path)`: clicks the download button, saves the file at `path` and returns its text."""

    def download_(page, selector: str, path: Path) -> str:
        with page.expect_download() as waiting:
            page.click(selector)
        waiting.value.save_as(path)
        return path.read_text(encoding="utf-8")

    return download_


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; each test module opens its own contexts (separate sessions)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        yield browser
        browser.close()
