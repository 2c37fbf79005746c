"""The Compare tab: one question, four answer panes (base control, RAG, fine-tuned, hybrid) streaming side by side."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from playground.compare import ROW_NAMES, CompareOptions, CompareService, Comparison
from playground.load import COMPARE_GROUP
from playground.metrics import TABLE_HEADERS, table_rows
from playground.ui import downloads as downloads_ui
from playground.ui import support as support_ui
from playground.ui import usage as usage_ui
from playground.ui.errors import shows_errors
from playground.ui.render import chunks_html, model_banner, score_legend
from playground.usage_log import UsageLog
from playground.zero_gpu import ZERO_GPU_COMPARE_S, on_gpu

PANES = {
    "base": ("Base model alone (control): no retrieval, no adapter", "answer-base"),
    "rag": ("RAG: base model + retrieved chunks", "answer-rag"),
    "finetuned": ("Fine-tuned: base model + LoRA adapter {adapter}, no retrieval", "answer-finetuned"),
    "hybrid": ("Hybrid: LoRA adapter {adapter} + retrieved chunks", "answer-hybrid"),
}
TIME_ALONE = "sequential"  # "time each approach alone": the arms run one after another


@dataclass(frozen=True)
class CompareControls:
    """The tab's adapter, decoding and retrieval settings: the Evaluate tab runs with the same ones."""

    adapter: gr.Dropdown
    files: gr.Dropdown
    max_new_tokens: gr.Slider
    temperature: gr.Slider
    seed: gr.Number
    alone: gr.Checkbox
    top_k: gr.Slider
    mode: gr.Radio
    rerank: gr.Checkbox
    usage_consent: gr.Checkbox | None = None  # may this browser's RAG answers be logged (None: no log here)

    def inputs(self) -> list[Any]:
        """In the order `compare_options` takes their values."""
        return [
            self.max_new_tokens,
            self.temperature,
            self.seed,
            self.alone,
            self.top_k,
            self.mode,
            self.files,
            self.rerank,
            self.adapter,
        ]


def compare_options(
    arms: tuple[str, ...],
    workspace_id: str | None,
    tokens: float,
    temp: float,
    seed_value: float | None,
    time_alone: bool,
    k: float,
    retrieval: str,
    only: list[str] | None,
    use_reranker: bool,
    adapter_name: str | None,
) -> CompareOptions:
    """The options the controls' values stand for."""
    return CompareOptions(
        arms=arms,
        max_new_tokens=int(tokens),
        temperature=float(temp),
        seed=int(seed_value or 0),
        top_k=int(k),
        retrieval=retrieval,
        files=tuple(only or ()),
        workspace=workspace_id,
        rerank=bool(use_reranker),
        adapter=adapter_name or None,
        timing=TIME_ALONE if time_alone else None,
    )


def pane_label(name: str, adapter: str | None) -> str:
    """A pane's label, naming the adapter that answers in it."""
    return PANES[name][0].format(adapter=adapter or "(none loaded)")


def _view(state: Comparison) -> tuple[Any, ...]:
    panes = [
        gr.update(
            value=state.texts.get(name, ""), label=pane_label(name, state.adapters.get(name) or state.model.adapter)
        )
        for name in PANES
    ]
    how = f"**How these figures were measured.** {state.timing_note}" if state.timing_note else ""
    if how:
        how += " Retrieval (query embedding, search, fusion, rerank, prompt) counts only for RAG and the hybrid."
    stages = state.retrieval.get("stages")
    return (
        *panes,
        chunks_html(state.chunks, stages=stages),
        score_legend(stages),
        table_rows(state.answers),
        state.summary,
        how,
    )


def build(
    service: CompareService,
    workspace: gr.BrowserState,
    adapters: list[str],
    banner: gr.Markdown,
    usage: UsageLog | None = None,
    consent: bool = False,
) -> CompareControls:
    """Lays out the tab; returns its settings (the other tabs update the file filter and the adapter choice)."""
    setup = service.setup()
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
        value=setup.model.adapter,
        label="LoRA adapter for the fine-tuned and hybrid panes (new fine-tunes appear here)",
        elem_id="adapter",
    )
    with gr.Accordion("Panes and decoding (applies to every pane)", open=False):
        with gr.Row():
            show_base = gr.Checkbox(value=True, label="Show the base model alone (the control)", elem_id="base-toggle")
            hybrid = gr.Checkbox(
                value=True, label="Show the hybrid pane (adapter + retrieval)", elem_id="hybrid-toggle"
            )
            alone = gr.Checkbox(
                value=False,
                label="Time each approach alone (one after another: exact figures, the panes fill in turn)",
                elem_id="time-alone",
            )
        with gr.Row():
            max_new_tokens = gr.Slider(8, 512, value=setup.max_new_tokens, step=8, label="Max new tokens")
            temperature = gr.Slider(0.0, 1.5, value=setup.temperature, step=0.05, label="Temperature (0 = greedy)")
            seed = gr.Number(value=setup.seed, precision=0, label="Seed")
    with gr.Accordion("Retrieval (what RAG and the hybrid read)", open=False), gr.Row():
        top_k = gr.Slider(1, 10, value=setup.top_k, step=1, label="Top-k chunks", elem_id="top-k")
        mode = gr.Radio(list(setup.modes), value=setup.mode.value, label="Retrieval", elem_id="retrieval-mode")
        files = gr.Dropdown(
            service.sources(), value=[], multiselect=True, label="Only these files (empty: all)", elem_id="files"
        )
        rerank = gr.Checkbox(
            value=False,
            label=f"Rerank with the cross-encoder {setup.rerank_name}",
            info=setup.rerank_note,
            visible=setup.rerank_available,  # no reranker model offline or online: no option
            elem_id="rerank",
        )
    with gr.Row(equal_height=True):
        panes = [
            gr.Textbox(
                label=pane_label(name, setup.model.adapter), elem_id=elem_id, lines=8, max_lines=20, interactive=False
            )
            for name, (_, elem_id) in PANES.items()
        ]
    support = support_ui.layout()  # each answer's sentences marked with what backs them, under its pane
    # With consent (`consent`: the box's default), each question with RAG's answer is logged to fine-tune on.
    logged = usage_ui.layout(usage, consent, workspace) if usage is not None else None
    summary = gr.Markdown(elem_id="summary")
    metrics = gr.Dataframe(
        headers=TABLE_HEADERS, elem_id="metrics", interactive=False, label="Latency and tokens, per approach", wrap=True
    )
    how = gr.Markdown(elem_id="timing-note")
    downloads = downloads_ui.build()  # this comparison as JSON / Markdown, the session's as CSV
    gr.Markdown(
        "### Retrieved chunks (what RAG and the hybrid read)\n"
        "<mark>Highlighted</mark>: text the RAG or hybrid answer repeats word for word."
    )
    legend = gr.Markdown(score_legend(None), elem_id="score-legend")
    chunks = gr.HTML(chunks_html([]), elem_id="chunks")

    controls = CompareControls(
        adapter, files, max_new_tokens, temperature, seed, alone, top_k, mode, rerank, logged and logged.consent
    )

    @shows_errors
    def run(
        question: str, with_base: bool, with_hybrid: bool, workspace_id: str | None, *settings: Any
    ) -> Iterator[tuple]:
        arms = tuple(n for n in ROW_NAMES if (n != "base" or with_base) and (n != "hybrid" or with_hybrid))
        options = compare_options(arms, workspace_id, *settings)
        # Closed explicitly: when the browser leaves, Gradio closes this generator, and the engine must
        # stop generating for it at once rather than when the garbage collector gets to it.
        with closing(service.stream(question, options)) as states:
            for state in states:
                yield (*_view(state), state.to_json() if state.done else None, *support.streaming(state))

    run = on_gpu(run, ZERO_GPU_COMPARE_S)  # on a ZeroGPU Space: a GPU for each comparison (else `run` itself)
    inputs = [prompt, show_base, hybrid, workspace, *controls.inputs()]
    outputs = [*panes, chunks, legend, metrics, summary, how, downloads.latest, *support.streamed()]
    private: dict[str, Any] = {"api_visibility": "private"}
    # One concurrency group for the page and the API: their comparisons share the slots and the bounded wait.
    slots: dict[str, Any] = {"concurrency_limit": setup.concurrency, "concurrency_id": COMPARE_GROUP}
    # The support check runs once the answers are complete, outside the comparison's slot: streaming never waits.
    check = support_ui.checker(service.support)
    for event in (ask.click, prompt.submit):  # default show_progress: a waiting page sees its position
        answered = event(run, inputs, outputs, **private, **slots)
        answered.success(check, support.finished, support.outputs(), **private)
        if logged is not None:  # like the check, outside the comparison's slot
            logged.log_after(answered, downloads.latest, workspace)
    show_base.change(lambda show: (gr.update(visible=show),) * 2, show_base, [panes[0], support.base], **private)
    hybrid.change(lambda show: (gr.update(visible=show),) * 2, hybrid, [panes[3], support.cells["hybrid"]], **private)

    def chosen(adapter_name: str | None) -> tuple[Any, ...]:
        """The banner and the adapter panes name the adapter that will answer."""
        name = adapter_name or setup.model.adapter
        return (
            model_banner(replace(setup.model, adapter=name)),
            gr.update(label=pane_label("finetuned", name)),
            gr.update(label=pane_label("hybrid", name)),
        )

    adapter.change(chosen, adapter, [banner, panes[2], panes[3]], **private)

    @shows_errors
    def compare(
        question: str,
        adapter: str | None = None,
        top_k: int | None = None,
        retrieval: str = setup.mode.value,
        rerank: bool = False,
        files: list[str] | None = None,
        arms: list[str] | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        timing: str | None = None,
        workspace: str | None = None,
        support: bool = False,
    ) -> dict:
        """Ask the arms one question; returns the comparison as JSON (answers, chunks, timings, summary).

        adapter: a registered adapter's name (default: the one the app started with); top_k: 1-20 chunks;
        retrieval: {modes}; rerank: use the cross-encoder; files: only these source files;
        arms: any of base, rag, finetuned, hybrid (default all); timing: interleaved, sequential or batched
        (default: the engine's); workspace: a private workspace id whose uploads are retrieved as well;
        support: also mark each sentence of the RAG, fine-tuned and hybrid answers as supported by a retrieved chunk,
        by the adapter's training data, or by neither (under "support").
        """
        options = CompareOptions.requested(
            arms, adapter, top_k, retrieval, rerank, files, max_new_tokens, temperature, seed, timing, workspace
        )
        state = service.compare(question, options)
        return state.to_json() | ({"support": service.support.check(state).to_json()} if support else {})

    compare.__doc__ = (compare.__doc__ or "").replace("{modes}", ", ".join(value for _, value in setup.modes))
    gr.api(on_gpu(compare, ZERO_GPU_COMPARE_S), api_name="compare", **slots)
    return controls
