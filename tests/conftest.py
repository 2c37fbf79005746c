"""Fixtures: a tiny demo model built from the sample data in seconds, shared by the session."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

# Tests never reach for the hub: everything they load is built here or ships in a package.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from playground.compare import CompareService
from playground.config import Settings
from playground.runtime import Runtime, start


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("playground-home")


@pytest.fixture(scope="session")
def settings(home: Path) -> Settings:
    return Settings(
        home=home, base_model="Qwen/Qwen2.5-0.5B-Instruct", demo_size="tiny", max_new_tokens=16, min_new_tokens=6
    )


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Runtime:
    return start(settings, log=lambda message: None)


@pytest.fixture(scope="session")
def service(runtime: Runtime) -> CompareService:
    return CompareService(runtime)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
