"""In a real browser, on a shared demo: a visitor's push needs its own token, the owner password unlocks the rest."""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def shared_url(runtime, monkeypatch_module):
    from playground.app import build_app
    from playground.ui.render import CSS

    monkeypatch_module.setenv("HF_TOKEN", "hf_server_secret")
    settings = runtime.settings.with_overrides(shared=True, owner_password="open sesame")
    folder = runtime.settings.home / "adapters" / "published-voice"
    shutil.copytree(Path(runtime.engine.adapters[runtime.model.adapter]), folder)
    meta = {"name": "published-voice", "base_model": runtime.model.base, "created": "2026-11-23T10:00:00"}
    (folder / "playground.json").write_text(json.dumps(meta))
    app = build_app(replace(runtime, settings=settings))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, css=CSS, quiet=True)
    yield f"http://127.0.0.1:{port}"
    app.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_a_visitor_needs_its_own_token_and_the_owner_password_unlocks(browser, shared_url):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(shared_url)
        page.wait_for_selector("#prompt textarea")
        page.get_by_role("tab", name="Fine-tune").click()
        assert "Shared demo" in page.locator("#ft-roles").inner_text()
        assert "owner only" in page.locator("#ft-token").inner_text()
        page.locator("#ft-chosen input").click()
        page.get_by_role("option", name="published-voice", exact=True).click()
        page.locator("#ft-repo textarea, #ft-repo input").first.fill("visitor/voice")
        page.get_by_role("button", name="Push adapter to the Hub").click()
        page.wait_for_function("() => document.body.innerText.includes('Type your own Hugging Face token')")
        page.get_by_role("button", name="Delete").click()
        page.wait_for_function("() => document.body.innerText.includes('can delete published-voice')")
        page.locator("#ft-owner-password input").fill("wrong")
        page.get_by_role("button", name="Unlock the owner's actions").click()
        page.wait_for_function("() => document.body.innerText.includes('not the owner password')")
        page.locator("#ft-owner-password input").fill("open sesame")
        page.get_by_role("button", name="Unlock the owner's actions").click()
        page.wait_for_function("() => document.body.innerText.includes('Owner actions unlocked')")
        assert page.locator("#ft-owner-password input").input_value() == ""
    finally:
        context.close()
