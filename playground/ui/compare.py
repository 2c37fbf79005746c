"""The Compare tab: one question, three answer panes streaming side by side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr

from playground.compare import CompareOptions, CompareService, Comparison
from playground.metrics import TABLE_HEADERS, table_rows
from playground.ui.render import chunks_html

PANES = {
    "rag": ("RAG: base model + retrieved chunks", "answer-rag"),
    "finetuned": ("Fine-tuned: base model + LoRA adapter, no retrieval", "answer-finetuned"),
    "hybrid": ("Hybrid: LoRA adapter + retrieved chunks", "answer-hybrid"),
}


def _view(state: Comparison) -> tuple[Any, ...]:
    texts = [state.texts.get(name, "") for name in PANES]
    if not state.model.adapter:
        texts[1] = texts[2] = "No LoRA adapter is loaded for this base model yet."
    table = table_rows(state.answers)
    return (*texts, chunks_html(state.chunks), table, state.summary)


def build(service: CompareService, workspace: gr.BrowserState, adapters: list[str]) -> tuple[gr.Dropdown, gr.Dropdown]:
    """Lays out the tab; returns the file filter and the adapter choice, which the other tabs update."""
    settings = service.runtime.settings
    with gr.Row():
        prompt = gr.Textbox(
            label="Question",
            placeholder="e.g. How much does the Summit 2 tent cost?",
            elem_id="prompt",
            lines=2,
            scale=5,
        )
        ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
    adapter = gr.Dropdown(
        adapters,
        value=service.runtime.model.adapter,
        label="LoRA adapter for the fine-tuned and hybrid panes (new fine-tunes appear here)",
        elem_id="adapter",
    )
    with gr.Accordion("Decoding (applies to every pane)", open=False), gr.Row():
        max_new_tokens = gr.Slider(8, 512, value=settings.max_new_tokens, step=8, label="Max new tokens")
        temperature = gr.Slider(0.0, 1.5, value=settings.temperature, step=0.05, label="Temperature (0 = greedy)")
        seed = gr.Number(value=settings.seed, precision=0, label="Seed")
        hybrid = gr.Checkbox(value=True, label="Show the hybrid pane (adapter + retrieval)", elem_id="hybrid-toggle")
    with gr.Accordion("Retrieval (what RAG and the hybrid read)", open=False), gr.Row():
        top_k = gr.Slider(1, 10, value=settings.top_k, step=1, label="Top-k chunks", elem_id="top-k")
        mode = gr.Radio(
            [("Hybrid: BM25 + dense, fused", "hybrid"), ("BM25 only", "bm25"), ("Dense only", "dense")],
            value="hybrid",
            label="Retrieval",
            elem_id="retrieval-mode",
        )
        files = gr.Dropdown(
            service.sources(), value=[], multiselect=True, label="Only these files (empty: all)", elem_id="files"
        )
        reranker = service.runtime.reranker
        rerank = gr.Checkbox(
            value=False,
            label=f"Rerank with the cross-encoder {reranker.name}",
            visible=reranker.available,  # no reranker model offline or online: no option
            elem_id="rerank",
        )
    with gr.Row(equal_height=True):
        panes = [
            gr.Textbox(label=label, elem_id=elem_id, lines=8, max_lines=20, interactive=False)
            for label, elem_id in PANES.values()
        ]
    summary = gr.Markdown(elem_id="summary")
    metrics = gr.Dataframe(headers=TABLE_HEADERS, elem_id="metrics", interactive=False, label="Latency and tokens")
    gr.Markdown(
        "### Retrieved chunks (what RAG and the hybrid read)\n"
        "<mark>Highlighted</mark>: text the RAG or hybrid answer repeats (runs of 4+ words, and numbers)."
    )
    chunks = gr.HTML(chunks_html([]), elem_id="chunks")

    def run(
        question: str,
        tokens: float,
        temp: float,
        seed_value: float | None,
        show_hybrid: bool,
        k: float,
        retrieval: str,
        only: list[str] | None,
        use_reranker: bool,
        adapter_name: str | None,
        workspace_id: str | None,
    ) -> Iterator[tuple]:
        options = CompareOptions(
            hybrid=bool(show_hybrid),
            max_new_tokens=int(tokens),
            temperature=float(temp),
            seed=int(seed_value or 0),
            top_k=int(k),
            retrieval=retrieval,
            files=tuple(only or ()),
            workspace=workspace_id,
            rerank=bool(use_reranker),
            adapter=adapter_name or None,
        )
        try:
            for state in service.stream(question, options):
                yield _view(state)
        except ValueError as error:
            raise gr.Error(str(error)) from None

    inputs = [prompt, max_new_tokens, temperature, seed, hybrid, top_k, mode, files, rerank, adapter, workspace]
    outputs = [*panes, chunks, metrics, summary]
    ask.click(run, inputs, outputs, api_visibility="private")
    prompt.submit(run, inputs, outputs, api_visibility="private")
    hybrid.change(lambda show: gr.update(visible=show), hybrid, panes[2], api_visibility="private")

    def compare(question: str) -> dict:
        """Ask all panes one question; returns the comparison as JSON (answers, chunks, timings, summary)."""
        return service.compare(question, CompareOptions()).to_json()

    gr.api(compare, api_name="compare")
    return files, adapter
