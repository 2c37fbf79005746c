"""In a real browser: the "Which approach?" tab gives advice with its reasons; a finished side-by-side comparison shows
its sentence-level support marks and offers itself as a JSON download; a RAG answer marked good becomes a row of the
Fine-tune tab's review table through "Use my RAG answers"."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from playground.export import COMPARISON_COLUMNS

pytestmark = pytest.mark.browser

QUESTION = "How many days do I have to return an item?"
DOWNLOAD_ENABLED = "() => { const b = document.querySelector('#download-json'); return !!b && !b.disabled; }"
GOOD_ENABLED = "() => { const b = document.querySelector('#usage-good input'); return !!b && !b.disabled; }"


def _text(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id}").inner_text()


def test_which_approach_gives_a_recommendation_with_reasons(open_page, shots):
    context, page = open_page("Which approach?")
    page.locator("#advisor-changes").get_by_label("weekly or more often").check()
    page.locator("#advisor-style").get_by_label("little", exact=True).check()
    page.locator("#advisor-citations input").check()
    page.click("#advisor-ask")
    page.wait_for_function("() => document.querySelector('#advisor-advice').innerText.includes('Why')", timeout=30_000)
    advice = _text(page, "advisor-advice")
    shots(page, "decide-advisor")
    assert any(name in advice.split("\n", 1)[0] for name in ("RAG", "Fine-tuning", "fine-tuning", "Hybrid", "hybrid"))
    assert "What was measured" in advice
    assert "cite" in advice.lower() or "change" in advice.lower()  # a reason in words, from the answers chosen
    context.close()


def test_compare_support_download_then_fine_tune_on_rag_answers(open_page, shots, download, tmp_path: Path):
    context, page = open_page()
    page.fill("#prompt textarea", QUESTION)
    page.click("#ask")
    page.wait_for_function(DOWNLOAD_ENABLED, timeout=180_000)
    assert page.locator("#answer-rag textarea").input_value().strip()

    # (a) the RAG pane's sentences, each tagged with what backs it (or "unsupported"), once the answers are complete
    page.wait_for_function("() => document.querySelectorAll('#support-rag .support-tag').length > 0", timeout=120_000)
    support = _text(page, "support-rag")
    assert "RAG" in support and "sentence" in support
    assert "Marked once every answer is complete" not in support

    # (b) this comparison as a JSON file
    assert not page.locator("#download-markdown").is_disabled()
    document = json.loads(download(page, "#download-json", tmp_path / "comparison.json"))
    assert QUESTION in json.dumps(document, ensure_ascii=False)
    # …as Markdown, with every section, and the session's comparisons as CSV, with every column
    report = download(page, "#download-markdown", tmp_path / "comparison.md")
    for section in (
        "# Comparison",
        "## Question",
        QUESTION,
        "## Settings",
        "## Figures per arm",
        "## Answers",
        "### RAG",
        "### Hybrid",
        "## Retrieved chunks",
        ".md",
    ):
        assert section in report, section
    rows = list(csv.DictReader(io.StringIO(download(page, "#download-csv", tmp_path / "comparisons.csv"))))
    assert tuple(rows[0]) == COMPARISON_COLUMNS
    assert {row["arm"] for row in rows} == {"base", "rag", "finetuned", "hybrid"}
    assert all(row["question"] == QUESTION and row["comparison"] == "1" for row in rows)
    shots(page, "decide-compare")

    # The answer was logged (consent is on by default off a shared demo): mark it good
    page.wait_for_function(GOOD_ENABLED, timeout=30_000)
    assert page.locator("#usage-consent input").is_checked()
    page.locator("#usage-good input").check()
    page.wait_for_function("() => document.querySelector('#usage-note').innerText.includes('Marked good')")

    page.get_by_role("tab", name="Fine-tune").click()
    page.get_by_text("…or build one from documents (RAG to fine-tuning)").click()
    page.click("#ft-use-usage")
    page.wait_for_function("() => document.querySelector('#ft-built-note').innerText.includes('Kept')", timeout=30_000)
    note = _text(page, "ft-built-note")
    assert "Kept 1 of your 1 logged RAG answers: 1 marked good" in note
    page.wait_for_function(
        f"() => document.querySelector('#ft-pairs').innerText.includes({json.dumps(QUESTION)})", timeout=30_000
    )
    shots(page, "decide-finetune")

    # (c) the reviewed log trains an adapter, and the job's card says where its data came from
    page.wait_for_function(
        "() => document.querySelector('#ft-verdict').innerText.includes('from-rag-usage.jsonl is ready')"
    )
    page.locator("#ft-name").locator("textarea, input").first.fill("from usage")
    page.get_by_text("LoRA and training settings (the preset's values)").click()
    page.locator("#ft-steps").locator("textarea, input").first.fill("4")
    page.get_by_role("button", name="Launch fine-tune").click()
    page.wait_for_function(
        "() => document.querySelector('#ft-progress').innerText.includes('from-usage')"
        " && document.querySelector('#ft-progress').innerText.includes('completed')",
        timeout=180_000,
    )
    card = _text(page, "ft-status")
    assert "from RAG usage log, 1 of 1 answers kept" in card, card
    assert "Saved adapter **from-usage**" in card or "Saved adapter from-usage" in card, card
    assert "from-usage" in _text(page, "ft-adapters")
    context.close()


def test_the_advice_quotes_this_persons_evaluation_and_votes(open_page, upload, tmp_path: Path):
    """Evaluate two questions, vote once blind, then ask: the advice cites that run by its id and the votes."""
    questions = tmp_path / "decide.csv"
    questions.write_text(
        "question,reference,fact\n"
        "What does the Ridgeline 4 tent cost?,The Ridgeline 4 tent costs $429.,$429\n"
        "How long is the return window?,Returns are accepted for 45 days.,45 days\n"
    )
    context, page = open_page("Evaluate")
    upload(page, "eval-upload", questions)
    page.get_by_label("Base (control)").uncheck()
    page.click("#eval-run")
    page.wait_for_function(
        "() => document.querySelector('#eval-status').innerText.includes('Stored as run')", timeout=240_000
    )
    run_id = re.search(r"Stored as run (\S+?)\.?$", _text(page, "eval-status").strip())[1]

    page.get_by_role("tab", name="Compare").click()  # the arena is a mode of the Compare tab
    page.get_by_role("tab", name="Blind arena").click()
    page.fill("#arena-prompt textarea", "Do you ship to Canada?")
    page.click("#arena-ask")
    page.wait_for_function(
        "() => { const b = document.querySelector('#arena-vote-b'); return !!b && !b.disabled; }", timeout=120_000
    )
    page.click("#arena-vote-b")
    page.wait_for_function("() => document.querySelector('#arena-reveal').innerText.includes(' was ')", timeout=60_000)

    page.get_by_role("tab", name="Which approach?").click()
    page.click("#advisor-ask")
    page.wait_for_function("() => document.querySelector('#advisor-advice').innerText.includes('Why')", timeout=30_000)
    measured = _text(page, "advisor-advice").split("What was measured", 1)[1]
    assert f"On your 2 questions (decide.csv, run {run_id})" in measured, measured
    assert re.search(r"scored \d\.\d\d(?: [^\n]*)?\[\d\.\d\d, \d\.\d\d\]", measured), (
        measured
    )  # a mean with its interval
    assert re.search(r"In \d+ blind-arena votes", measured), measured
    context.close()
