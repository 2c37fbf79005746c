"""In a real browser, on a shared demo: a visitor's push needs its own token, the owner password unlocks the rest."""

from __future__ import annotations

import json
import re
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


def _open_shared(browser, shared_url: str, choose_tab, tab: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(shared_url)
    page.wait_for_selector("#prompt textarea")
    choose_tab(page, tab)
    return context, page


def _earlier_runs(page) -> str:
    page.get_by_text("Earlier runs (stored with their settings)").click()
    page.wait_for_selector("#eval-history")
    return page.locator("#eval-history").inner_text()


def _advice(page, choose_tab) -> str:
    choose_tab(page, "Which approach?")
    page.click("#advisor-ask")
    page.wait_for_function("() => document.querySelector('#advisor-advice').innerText.includes('Why')", timeout=30_000)
    return page.locator("#advisor-advice").inner_text()


def test_on_a_shared_demo_each_browser_sees_and_is_advised_on_its_own_runs(
    browser, shared_url, upload, choose_tab, tmp_path
):
    """A visitor's evaluation holds its questions and answers: listed, offered and cited to that browser only, also
    after a reload; another visitor sees none of it, and asking for it by id through the API finds nothing."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    questions = tmp_path / "private-questions.csv"
    questions.write_text(
        "question,reference,fact\nWhat does the Ridgeline 4 tent cost?,The Ridgeline 4 tent costs $429.,$429\n"
    )
    mine, page = _open_shared(browser, shared_url, choose_tab, "Evaluate")
    upload(page, "eval-upload", questions)
    page.get_by_label("Base (control)").uncheck()
    page.click("#eval-run")
    page.wait_for_function(
        "() => document.querySelector('#eval-status').innerText.includes('Stored as run')", timeout=240_000
    )
    run_id = re.search(r"Stored as run (\S+?)\.?$", page.locator("#eval-status").inner_text().strip())[1]

    page.reload()  # back later: the page load lists the browser's runs again
    page.wait_for_selector("#prompt textarea")
    choose_tab(page, "Evaluate")
    _earlier_runs(page)
    page.wait_for_function(f"() => document.querySelector('#eval-history').innerText.includes({run_id!r})")
    assert f"On your 1 question (private-questions.csv, run {run_id})" in _advice(page, choose_tab)
    mine.close()

    stranger, page = _open_shared(browser, shared_url, choose_tab, "Evaluate")
    _earlier_runs(page)
    page.get_by_role("button", name="Refresh").click()
    page.wait_for_timeout(2_000)  # the refresh has answered: the same event listed the run in the first browser
    assert run_id not in page.locator("#eval-history").inner_text()
    advice = _advice(page, choose_tab)
    assert run_id not in advice and "private-questions.csv" not in advice and "On your" not in advice
    page.locator("#advisor-run input").click()
    assert run_id not in page.locator("ul[role=listbox]").inner_text()
    stranger.close()
    with pytest.raises(AppError, match=f"No stored evaluation run '{run_id}'"):
        Client(shared_url, verbose=False).predict(run=run_id, api_name="/advise")


def test_on_a_shared_demo_a_visitor_watches_its_own_fine_tune_and_only_the_queue_of_others(
    browser, shared_url, choose_tab, runtime
):
    """The job card and table showed the running job to every visitor: its adapter's name, data file and losses."""
    mine, page = _open_shared(browser, shared_url, choose_tab, "Fine-tune")
    page.locator("#ft-example input").click()
    page.get_by_role("option", name="formats/qa.csv", exact=True).click()
    page.wait_for_function("() => document.querySelector('#ft-verdict').innerText.includes('is ready')")
    page.locator("#ft-name").locator("textarea, input").first.fill("quillfeather voice")
    page.get_by_text("LoRA and training settings (the preset's values)").click()
    page.locator("#ft-steps").locator("textarea, input").first.fill("5000")
    page.get_by_role("button", name="Launch fine-tune").click()
    page.wait_for_function(
        "() => document.querySelector('#ft-progress').innerText.includes('quillfeather-voice')", timeout=120_000
    )

    stranger, other = _open_shared(browser, shared_url, choose_tab, "Fine-tune")
    other.wait_for_function(
        "() => document.querySelector('#ft-jobs').innerText.includes(\"another visitor's\")", timeout=30_000
    )
    assert "No fine-tune from this browser yet" in other.locator("#ft-progress").inner_text()
    seen = other.locator("#ft-jobs").inner_text() + other.locator("#ft-status").inner_text()
    assert "quillfeather" not in seen and "qa.csv" not in seen
    assert "quillfeather" in page.locator("#ft-jobs").inner_text()  # the visitor's own row is whole
    other.click("#ft-cancel")  # not its job to stop
    other.wait_for_function("() => document.body.innerText.includes('No fine-tune launched from this browser')")
    stranger.close()

    page.click("#ft-cancel")  # queued or running, it ends cancelled
    page.wait_for_function(
        "() => document.querySelector('#ft-progress').innerText.includes('cancelled')", timeout=120_000
    )
    mine.close()
    shutil.rmtree(runtime.settings.home / "adapters" / "quillfeather-voice", ignore_errors=True)  # other tests' lists
