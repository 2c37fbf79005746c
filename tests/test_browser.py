"""In a real browser: ask a question, see chunks, three streamed answers and the metrics table."""

from __future__ import annotations

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


def test_asking_fills_every_pane_while_streaming(page, runtime):
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
    page.fill("#prompt textarea", "What is the price of the Ridgeline 4 tent?")
    page.click("#ask")
    page.wait_for_function(
        "() => document.querySelector('#metrics') && document.querySelector('#metrics').innerText.includes('Hybrid')",
        timeout=120_000,
    )
    page.evaluate("() => { window.__stopWatching = true; }")
    for pane in ("answer-rag", "answer-finetuned", "answer-hybrid"):
        assert _value(page, pane).strip(), pane
    chunks = page.locator("#chunks").inner_text()
    assert "ridgeline-4-tent.txt" in chunks
    assert "fused" in chunks and "BM25" in chunks
    metrics = page.locator("#metrics").inner_text()
    assert "RAG" in metrics and "Fine-tuned model" in metrics
    assert "than RAG" in page.locator("#summary").inner_text() or "as RAG" in page.locator("#summary").inner_text()
    values = page.evaluate("() => window.__ragValues")
    non_empty = [v for v in values if v]
    assert len(non_empty) >= 2, f"the RAG answer appeared at once, not streamed: {values}"
    assert "demo model" in page.locator("#model-banner").inner_text()


def test_hybrid_pane_can_be_hidden(page):
    page.get_by_text("Decoding (applies to every pane)").click()
    page.click("#hybrid-toggle input")
    page.wait_for_selector("#answer-hybrid", state="hidden")
    page.click("#hybrid-toggle input")
    page.wait_for_selector("#answer-hybrid", state="visible")


def test_compare_api_endpoint(url):
    from gradio_client import Client

    result = Client(url, verbose=False).predict("How much does the Summit 2 tent cost?", api_name="/compare")
    assert result["question"] == "How much does the Summit 2 tent cost?"
    assert set(result["answers"]) == {"rag", "finetuned", "hybrid"}
    assert result["chunks"][0]["source"].endswith((".md", ".txt"))


def test_retrieval_mode_from_the_page(page):
    page.get_by_text("Retrieval (what RAG and the hybrid read)").click()
    page.get_by_label("BM25 only").check()
    page.fill("#prompt textarea", "How many days do I have to return an item?")
    page.click("#ask")
    page.wait_for_function(
        "() => document.querySelector('#chunks').innerText.includes('return-policy') "
        "&& document.querySelector('#metrics').innerText.includes('RAG')",
        timeout=120_000,
    )
    page.wait_for_function("() => !document.querySelector('#chunks').innerText.includes('dense 0')", timeout=30_000)
    heads = page.locator("#chunks .chunk-head").all_inner_texts()
    assert heads and all("dense –" in head for head in heads), heads
