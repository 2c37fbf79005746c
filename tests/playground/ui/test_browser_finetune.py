"""In a real browser: check a dataset, launch the quick preset, watch the loss, use the new adapter in Compare;
a reload re-attaches to the running job, which Cancel stops with a usable adapter and Resume continues."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser


def _text(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def _fill(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id}").locator("textarea, input").first.fill(value)


def _choose(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_launch_watch_and_compare(open_page, tmp_path: Path, shots):
    context, page = open_page("Fine-tune")
    assert "transformers" in _text(page, "ft-backend")

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "Hi?"}]}\n')
    page.locator("#ft-data input[type=file]").set_input_files(bad)
    page.wait_for_function("() => document.querySelector('#ft-verdict').innerText.includes('problem')")
    assert "must have role 'assistant'" in _text(page, "ft-issues") or "assistant" in _text(page, "ft-issues")
    page.get_by_role("button", name="Launch fine-tune").click()  # refused: the data has problems
    page.wait_for_function("() => document.body.innerText.includes('Fix the dataset first')", timeout=30_000)

    _choose(page, "ft-example", "formats/qa.csv")
    page.wait_for_function("() => document.querySelector('#ft-verdict').innerText.includes('is ready: 15 examples')")
    assert "Length per example" in _text(page, "ft-stats") and "null" not in _text(page, "ft-stats")
    _fill(page, "ft-name", "browser voice")
    page.get_by_text("LoRA and training settings (the preset's values)").click()
    _fill(page, "ft-steps", "40")
    page.get_by_role("button", name="Launch fine-tune").click()
    # While it trains, the progress line's loss changes from step to step: every value it shows is kept.
    page.wait_for_function(
        """() => {
            const text = document.querySelector('#ft-progress').innerText;
            window.__losses = window.__losses || new Set();
            const found = text.match(/running · step (\\d+) of 40.*train loss \\(last step\\) ([0-9.]+)/);
            if (found) window.__losses.add(found[1] + ':' + found[2]);
            return text.includes('browser-voice') && text.includes('completed');
        }""",
        timeout=180_000,
    )
    seen = page.evaluate("() => [...window.__losses]")
    assert len({entry.split(":")[1] for entry in seen}) >= 2, f"the loss shown never moved while training: {seen}"
    shots(page, "3-finetune-loss")
    assert "Saved adapter" in _text(page, "ft-status")
    assert "browser-voice" in _text(page, "ft-adapters")
    assert page.locator("#ft-plot canvas, #ft-plot svg").count() > 0

    page.get_by_role("tab", name="Compare").click()
    page.wait_for_timeout(1500)  # the tab's timer has offered the new adapter by now
    _choose(page, "adapter", "browser-voice")
    page.fill("#prompt textarea", "Do you sell tents?")
    page.click("#ask")
    page.wait_for_function("() => document.querySelector('#metrics').innerText.includes('Fine-tuned')", timeout=120_000)
    assert page.locator("#answer-finetuned textarea").input_value().strip()
    context.close()


def test_reload_reattaches_and_cancel_keeps_the_adapter(open_page):
    context, page = open_page("Fine-tune")
    _choose(page, "ft-example", "formats/alpaca.json")
    page.wait_for_function("() => document.querySelector('#ft-verdict').innerText.includes('is ready')")
    _fill(page, "ft-name", "long run")
    page.get_by_text("LoRA and training settings (the preset's values)").click()
    _fill(page, "ft-steps", "5000")
    page.get_by_role("button", name="Launch fine-tune").click()
    page.wait_for_function("() => document.querySelector('#ft-progress').innerText.includes('step ')", timeout=120_000)

    page.reload()
    page.get_by_role("tab", name="Fine-tune").click()
    page.wait_for_function(
        "() => document.querySelector('#ft-progress').innerText.includes('long-run')"
        " && document.querySelector('#ft-progress').innerText.includes('running')",
        timeout=30_000,
    )
    page.click("#ft-cancel")
    page.wait_for_function(
        "() => document.querySelector('#ft-status').innerText.includes('saved as incomplete')", timeout=120_000
    )
    assert "incomplete" in _text(page, "ft-adapters")
    stopped = int(
        page.evaluate("() => document.querySelector('#ft-status').innerText.match(/Checkpoint at step (\\d+)/)[1]")
    )

    page.click("#ft-resume")  # goes on from the checkpoint: steps counted on, not from 1
    page.wait_for_function(
        "() => document.querySelector('#ft-status').innerText.includes(\"last checkpoint, with its data\")",
        timeout=30_000,
    )
    # The new job's card once it runs (until the app has seen the old process end, the card may show the old job).
    first = page.wait_for_function(
        "() => { const text = document.querySelector('#ft-progress').innerText;"
        " return text.includes('running') && (text.match(/step (\\d+) of 5000/) || [])[1]; }",
        timeout=120_000,
    ).json_value()
    assert int(first) > stopped, f"the resumed job started at step {first}, not after {stopped}"
    page.click("#ft-cancel")
    page.wait_for_function(
        "() => document.querySelector('#ft-progress').innerText.includes('cancelled')", timeout=120_000
    )
    context.close()


def test_build_a_dataset_from_documents_review_and_use_it(open_page):
    context, page = open_page("Fine-tune")
    page.get_by_text("…or build one from documents (RAG to fine-tuning)").click()
    page.get_by_role("button", name="Build question–answer pairs").click()
    page.wait_for_function("() => document.querySelector('#ft-built-note').innerText.includes('templates')")
    assert "How much does the" in _text(page, "ft-pairs") and "template: price" in _text(page, "ft-pairs")
    page.get_by_role("button", name="Use these pairs as the dataset").click()
    page.wait_for_function(
        "() => document.querySelector('#ft-verdict').innerText.includes('from-documents.jsonl is ready: 100 examples')"
    )
    # Without uploads, "my documents" says what to do.
    page.get_by_label("My uploaded documents").check()
    page.get_by_role("button", name="Build question–answer pairs").click()
    page.wait_for_function("() => document.body.innerText.includes('You have not uploaded documents yet')")
    context.close()


def test_the_backend_selector_says_what_each_choice_does_here(open_page):
    from adapters.training.backends import BACKENDS, describe

    context, page = open_page("Fine-tune")
    assert page.locator("#ft-backend-choice").is_visible()
    assert _text(page, "ft-backend-note").strip() == describe("auto")
    for name, backend in BACKENDS.items():
        _choose(page, "ft-backend-choice", backend.label)
        page.wait_for_function(
            "expected => document.querySelector('#ft-backend-note').innerText.trim() === expected", arg=describe(name)
        )
    unsloth = BACKENDS["unsloth"]
    if unsloth.problem(probe=False) is not None:  # a launch with it is refused, with the reason
        _choose(page, "ft-example", "formats/qa.csv")
        page.wait_for_function("() => document.querySelector('#ft-verdict').innerText.includes('is ready')")
        _choose(page, "ft-backend-choice", unsloth.label)
        page.get_by_role("button", name="Launch fine-tune").click()
        page.wait_for_function(
            "() => document.body.innerText.includes('the Unsloth backend cannot run here')", timeout=30_000
        )
    context.close()


def test_the_memory_estimate_follows_the_settings_and_a_job_that_cannot_fit_is_refused(open_page):
    context, page = open_page("Fine-tune")
    assert "Memory: about" in _text(page, "ft-memory") and "so it fits" in _text(page, "ft-memory")
    page.get_by_text("LoRA and training settings (the preset's values)").click()
    _fill(page, "ft-batch", "100000000")
    page.locator("#ft-batch input").first.press("Enter")
    page.wait_for_function("() => document.querySelector('#ft-memory').innerText.includes('Will not fit')")
    assert "lower the batch size or the maximum sequence length" in _text(page, "ft-memory")
    _choose(page, "ft-example", "formats/qa.csv")
    page.wait_for_function("() => document.querySelector('#ft-verdict').innerText.includes('is ready')")
    page.get_by_role("button", name="Launch fine-tune").click()
    page.wait_for_function("() => document.body.innerText.includes('memory is free (')", timeout=30_000)
    _fill(page, "ft-batch", "8")
    page.locator("#ft-batch input").first.press("Enter")
    page.wait_for_function("() => document.querySelector('#ft-memory').innerText.includes('so it fits')")
    context.close()
