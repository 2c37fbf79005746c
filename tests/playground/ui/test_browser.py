"""In a real browser: ask a question, see chunks, four streamed answers, the metrics table, the chosen adapter."""

from __future__ import annotations

import csv
import json

import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(browser, url):
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#prompt textarea")
    yield page
    context.close()


def _value(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} textarea").input_value()


def _ask(page, question: str, answered_js: str) -> None:
    """Types the question, asks, and waits until `answered_js` (a JavaScript predicate) holds."""
    page.fill("#prompt textarea", question)
    page.click("#ask")
    page.wait_for_function(answered_js, timeout=120_000)


def test_asking_fills_every_pane_while_streaming(page, runtime, shots):
    # Record every distinct value the RAG pane takes, to see the answer arrive in pieces.
    page.evaluate(
        """() => {
            window.__ragValues = [];
            const area = document.querySelector('#answer-rag textarea');
            const tick = () => {
                const v = area.value;
                if (window.__ragValues[window.__ragValues.length - 1] !== v) window.__ragValues.push(v);
                if (!window.__stopWatching) requestAnimationFrame(tick);
            };
            tick();
        }"""
    )
    _ask(
        page,
        "What is the price of the Ridgeline 4 tent?",
        # Rows arrive as the arms finish, in any order: wait for all four.
        "() => { const m = document.querySelector('#metrics'); "
        "return !!m && ['Base', 'RAG', 'Fine-tuned', 'Hybrid'].every((arm) => m.innerText.includes(arm)); }",
    )
    page.evaluate("() => { window.__stopWatching = true; }")
    for pane in ("answer-base", "answer-rag", "answer-finetuned", "answer-hybrid"):
        assert _value(page, pane).strip(), pane
    chunks = page.locator("#chunks").inner_text()
    assert "ridgeline-4-tent.txt" in chunks
    assert "fused" in chunks and "BM25" in chunks
    metrics = page.locator("#metrics").inner_text()
    assert "RAG" in metrics and f"Fine-tuned (adapter {runtime.model.adapter})" in metrics and "Base" in metrics
    assert "measured" in page.locator("#timing-note").inner_text()
    assert "than RAG" in page.locator("#summary").inner_text() or "as RAG" in page.locator("#summary").inner_text()
    values = page.evaluate("() => window.__ragValues")
    non_empty = [v for v in values if v]
    assert len(non_empty) >= 2, f"the RAG answer appeared at once, not streamed: {values}"
    assert "demo model" in page.locator("#model-banner").inner_text()
    shots(page, "1-compare-four-panes")


def test_hybrid_pane_can_be_hidden(page):
    page.get_by_text("Panes and decoding (applies to every pane)").click()
    page.click("#hybrid-toggle input")
    page.wait_for_selector("#answer-hybrid", state="hidden")
    page.click("#hybrid-toggle input")
    page.wait_for_selector("#answer-hybrid", state="visible")


def test_compare_api_endpoint(url):
    from gradio_client import Client

    result = Client(url, verbose=False).predict("How much does the Summit 2 tent cost?", api_name="/compare")
    assert result["question"] == "How much does the Summit 2 tent cost?"
    assert set(result["answers"]) == {"base", "rag", "finetuned", "hybrid"}
    assert result["chunks"][0]["source"].endswith((".md", ".txt"))


def test_retrieval_mode_from_the_page(page):
    page.get_by_text("Retrieval (what RAG and the hybrid read)").click()
    page.get_by_label("BM25 only").check()
    _ask(
        page,
        "How many days do I have to return an item?",
        "() => document.querySelector('#chunks').innerText.includes('return-policy') "
        "&& document.querySelector('#metrics').innerText.includes('RAG')",
    )
    page.wait_for_function("() => !document.querySelector('#chunks').innerText.includes('dense')", timeout=30_000)
    heads = page.locator("#chunks .chunk-head").all_inner_texts()
    assert heads and all("dense" not in head and "fused" not in head for head in heads), heads


def test_compare_api_takes_options_and_explains_mistakes(url, runtime):
    from gradio_client import Client

    client = Client(url, verbose=False)
    result = client.predict(
        "How many days do I have to return an item?",
        adapter=runtime.model.adapter,
        top_k=2,
        retrieval="bm25",
        arms=["base", "finetuned"],
        max_new_tokens=4,
        api_name="/compare",
    )
    assert result["answers"]["rag"] is None and result["answers"]["base"]["completion_tokens"] <= 4
    assert result["retrieval"]["mode"] == "keyword" and result["chunks"] == []  # the old name "bm25" still works
    for kwargs, message in (
        ({"question": ""}, "Type a question"),
        ({"question": "x" * 2001}, "limit is 2000"),
        ({"question": "Hi?", "adapter": "no-such-adapter"}, "no-such-adapter"),
        ({"question": "Hi?", "top_k": 99}, "top-k"),
    ):
        with pytest.raises(Exception, match=message):
            client.predict(**kwargs, api_name="/compare")


def test_pane_labels_name_the_chosen_adapter(browser, url, runtime):
    """A second adapter registered while the page is served (named `forward`, a peft module attribute; the CLI's
    test takes `train`) shows up after a reload; choosing it renames the banner, the adapter panes and the metrics
    rows."""
    import json
    import shutil
    from pathlib import Path

    folder = runtime.settings.home / "adapters" / "forward"
    shutil.copytree(Path(runtime.engine.adapters[runtime.model.adapter]), folder)
    (folder / "playground.json").write_text(json.dumps({"name": "forward", "base_model": runtime.model.base}))
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("#prompt textarea")
        page.locator("#adapter input").click()
        page.get_by_role("option", name="forward", exact=True).click()
        page.wait_for_function(
            "() => document.querySelector('#answer-finetuned').innerText.includes('LoRA adapter forward')"
        )
        assert "adapter forward" in page.locator("#answer-hybrid").inner_text()
        assert "**forward**" not in page.locator("#model-banner").inner_text()
        assert "forward" in page.locator("#model-banner").inner_text()
        # The arms finish in any order: wait for both adapter rows, not for one and then assert the other.
        _ask(
            page,
            "Do you ship to Canada?",
            "() => ['Hybrid (adapter forward)', 'Fine-tuned (adapter forward)']"
            ".every(row => document.querySelector('#metrics').innerText.includes(row))",
        )
        assert page.locator("#answer-finetuned textarea").input_value().strip()
    finally:
        context.close()
        runtime.engine.unload_adapter("forward")
        shutil.rmtree(folder)


def _wait_for_text(page, elem_id: str, text: str) -> None:
    page.wait_for_function(f"() => document.querySelector('#{elem_id}').innerText.includes({text!r})", timeout=240_000)


def test_evaluate_tab_runs_an_uploaded_question_set_and_offers_the_rows(open_page, upload, tmp_path, shots):
    questions = tmp_path / "mine.csv"
    questions.write_text(
        "question,reference,fact,source\n"
        "What does the Ridgeline 4 tent cost?,The Ridgeline 4 tent costs $429.,$429,ridgeline-4-tent.txt\n"
        "How long is the return window?,Returns are accepted for 60 days.,60 days,return-policy.md\n"
    )
    context, page = open_page("Evaluate")
    upload(page, "eval-upload", questions)
    page.get_by_label("Base (control)").uncheck()  # three arms: quicker, and the choice is honoured
    page.click("#eval-run")
    _wait_for_text(page, "eval-status", "Done")
    summary = page.locator("#eval-summary").inner_text()
    assert "RAG" in summary and "Hybrid" in summary and "Base" not in summary
    assert "[" in summary and "]" in summary  # every mean with its interval
    assert "Hybrid − RAG" in page.locator("#eval-differences").inner_text()
    assert "recall@k" in page.locator("#eval-retrieval").inner_text()
    # Each chart drawn (Vega renders into a canvas or an svg) before the screenshot: the page is the evidence.
    page.wait_for_function(
        "() => ['quality', 'latency', 'tradeoff'].every((name) => { const drawn = document.querySelector("
        "`#eval-${name}-plot canvas, #eval-${name}-plot .vega-embed svg`); return drawn && drawn.clientHeight > 50; })",
        timeout=60_000,
    )
    shots(page, "4-evaluate-table")
    with page.expect_download() as download:
        page.locator("#eval-csv a").first.click()
    with download.value.path().open(newline="") as written:
        rows = list(csv.DictReader(written))
    assert [row["arm"] for row in rows] == ["rag", "finetuned", "hybrid"] * 2
    with page.expect_download() as download:
        page.locator("#eval-json a").first.click()
    record = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert record["questions"] == 2 and set(record["arms"]) == {"rag", "finetuned", "hybrid"}
    assert record["settings"]["questions"]["name"] == "mine.csv"
    context.close()


def test_forgetting_check_from_the_evaluate_tab(open_page):
    """The accordion measures the Compare tab's adapter against the base model and says so in figures."""
    context, page = open_page("Evaluate")
    page.get_by_text("Forgetting check").click()
    page.click("#forgetting-run")
    _wait_for_text(page, "forgetting-result", "measured in")
    said = page.locator("#forgetting-result").inner_text()
    assert "On general text the adapter's perplexity" in said and "general questions" in said
    assert "→" in said  # base → adapter, as figures
    context.close()


def test_freshness_drill_from_the_evaluate_tab_reads_the_changed_copy(open_page):
    """Without the re-fine-tune: the guided change is indexed as a private copy and every retrieving arm is asked."""
    context, page = open_page("Evaluate")
    page.get_by_text("Freshness drill").click()
    page.get_by_label("Also re-fine-tune on the updated data and time it").uncheck()
    page.click("#fresh-run")
    _wait_for_text(page, "fresh-result", "re-indexing one file")
    said = page.locator("#fresh-result").inner_text()
    assert "After glacier-15-sleeping-bag.md changed from $319 to $339" in said
    assert "RAG gave the new fact in" in said and "re-fine-tune" not in said
    assert page.locator("#fresh-answers tbody tr").count() >= 1  # one per retrieving arm and question
    assert "RAG" in page.locator("#fresh-answers").inner_text()
    context.close()
