"""The Evaluate tab: every chosen arm over a question set, with the Compare tab's settings; progress, a summary with
95 % intervals, plots, downloads and the stored runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from playground.compare import ROW_NAMES
from playground.eval_service import EvaluateService
from playground.eval_tables import (
    ARM_HEADERS,
    DIFFERENCE_HEADERS,
    HISTORY_HEADERS,
    LIVE_HEADERS,
    arm_rows,
    difference_rows,
    history_rows,
    live_rows,
    retrieval_text,
)
from playground.evaluate import EvalReport
from playground.freshness import Change, FreshnessReport, FreshnessService
from playground.metrics import NAMES, arm_label
from playground.ui.compare import CompareControls, compare_options
from playground.ui.errors import shows_errors

INTRO = (
    "Scores every chosen arm over a question set, with the **Compare tab's** adapter, decoding and retrieval settings "
    "(retrieval reads the shared documents and your own uploads). Upload a CSV or JSONL file with `question`, "
    "`reference` and optionally `fact` (a short string a right answer contains), `source` (the file that holds the "
    "answer: retrieval is scored against it) and `kind`; without a file the sample set is used. Means come with "
    "95 % bootstrap intervals; a difference between two arms whose interval includes 0 is not told apart by these "
    "questions, and under 5 questions no arm is called ahead at all."
)


FORGETTING = (
    "Fine-tuning on a small set can make a model forget general skills. This compares the base model with the "
    "adapter on text and questions outside any fine-tuning data (`sample_data/general`, or "
    "`PLAYGROUND_GENERAL_DATA`): perplexity on general prose (lower: the text surprises the model less) and how "
    "many short general questions each answers with the expected fact. Every fine-tune job runs it when it ends "
    "(its card and the adapters table show the figures)."
)


FRESHNESS = (
    "Fine-tuning makes knowledge static. Change a fact in a private copy of one document (the shared documents are "
    "never modified), re-index that copy, and ask again: RAG and the hybrid read the new fact, the adapter trained "
    "before the change still says the old one. With the box ticked, the drill also re-fine-tunes on the fine-tuning "
    "set with the same change (quick preset, a real job) and times it, beside the seconds re-indexing took."
)
FRESHNESS_HEADERS = ["question", "answer by", "answer", "new fact", "old fact"]


def freshness_rows(report: FreshnessReport) -> list[list[Any]]:
    def yes(value: bool) -> str:
        return "yes" if value else "no"

    rows = [
        [a["question"], arm_label(a["arm"], a["adapter"] or None), a["text"], yes(a["new"]), yes(a["old"])]
        for a in report.answers
    ]
    for a in report.refinetune.get("answers", []):
        name = arm_label("finetuned", report.refinetune["adapter"]) + ", re-tuned"
        rows.append([a["question"], name, a["text"], yes(a["new"]), ""])
    return rows


def build(
    service: EvaluateService,
    workspace: gr.BrowserState,
    controls: CompareControls,
    freshness: FreshnessService | None = None,
) -> tuple[Callable[[str | None], list[list[Any]]], gr.Dataframe]:
    """Lays out the tab; returns what fills the earlier runs this browser may see, and their table, for page load."""
    gr.Markdown(INTRO)
    with gr.Row():
        upload = gr.File(
            label="Question file (CSV or JSONL; empty: the sample set)",
            file_types=[".csv", ".jsonl", ".json"],
            type="filepath",
            elem_id="eval-upload",
            scale=3,
        )
        with gr.Column(scale=2):
            arms = gr.CheckboxGroup(
                [(NAMES[arm], arm) for arm in ROW_NAMES], value=list(ROW_NAMES), label="Arms", elem_id="eval-arms"
            )
            limit = gr.Number(
                0, precision=0, minimum=0, label="Only the first N questions (0: all)", elem_id="eval-limit"
            )
    with gr.Row():
        start = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
        stop = gr.Button("Stop (keeps what was answered)", elem_id="eval-stop")
    status = gr.Markdown(elem_id="eval-status")
    findings = gr.Markdown(elem_id="eval-findings")
    arm_table = gr.Dataframe(
        headers=ARM_HEADERS,
        label="Per arm: mean [95 % bootstrap interval]",
        interactive=False,
        wrap=True,
        elem_id="eval-summary",
    )
    retrieval = gr.Markdown(elem_id="eval-retrieval")
    differences = gr.Dataframe(
        headers=DIFFERENCE_HEADERS,
        label="Differences between arms, question by question (paired bootstrap)",
        interactive=False,
        wrap=True,
        elem_id="eval-differences",
    )
    quality_plot = gr.Plot(label="Quality per arm", elem_id="eval-quality-plot")
    with gr.Row():
        latency_plot = gr.Plot(label="Latency per arm", elem_id="eval-latency-plot")
        tradeoff_plot = gr.Plot(label="Quality against latency", elem_id="eval-tradeoff-plot")
    with gr.Row():
        rows_file = gr.File(label="Rows: one per question and arm (CSV)", interactive=False, elem_id="eval-csv")
        run_file = gr.File(label="Settings and summary (JSON)", interactive=False, elem_id="eval-json")
    live = gr.Dataframe(
        headers=LIVE_HEADERS, label="Answers so far (newest first)", interactive=False, wrap=True, elem_id="eval-live"
    )
    with gr.Accordion("Forgetting check: does the adapter still know what the base model knew?", open=False):
        gr.Markdown(FORGETTING)
        check = gr.Button("Check the adapter chosen in the Compare tab", elem_id="forgetting-run")
        forgetting = gr.Markdown(elem_id="forgetting-result")
    if freshness is not None:
        guided = freshness.guided()
        with gr.Accordion("Freshness drill: a fact changes; who learns it, and how fast?", open=False):
            gr.Markdown(FRESHNESS)
            with gr.Row():
                drill_file = gr.Dropdown(
                    sorted(freshness.runtime.shared_sources),
                    value=guided.source,
                    label="Document",
                    elem_id="fresh-file",
                )
                drill_old = gr.Textbox(guided.old, label="The fact as it stands", elem_id="fresh-old")
                drill_new = gr.Textbox(guided.new, label="What it becomes", elem_id="fresh-new")
            drill_questions = gr.Textbox(
                "\n".join(guided.questions),
                lines=2,
                label="Questions the fact answers (one per line)",
                elem_id="fresh-questions",
            )
            retrain = gr.Checkbox(
                True, label="Also re-fine-tune on the updated data and time it", elem_id="fresh-retrain"
            )
            drill = gr.Button("Run the drill", elem_id="fresh-run")
            drill_result = gr.Markdown(elem_id="fresh-result")
            drill_answers = gr.Dataframe(
                headers=FRESHNESS_HEADERS, interactive=False, wrap=True, elem_id="fresh-answers"
            )
    with gr.Accordion("Earlier runs (stored with their settings)", open=False):
        history = gr.Dataframe(
            headers=HISTORY_HEADERS, interactive=False, elem_id="eval-history"
        )  # filled on page load: on a shared demo each browser sees its own runs
        refresh = gr.Button("Refresh", size="sm")
    token = gr.State(None)

    @shows_errors
    def run(
        file: str | None,
        chosen: list[str],
        first: float | None,
        workspace_id: str | None,
        *settings: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> Iterator[dict]:
        options = compare_options(tuple(chosen or ()), workspace_id, *settings)
        questions = service.questions(file, int(first or 0))
        run_token = service.start()
        yield {token: run_token, status: f"Evaluating {len(questions.items)} questions from {questions.name}…"}
        for step in service.run(run_token, questions, options):
            if not isinstance(step, EvalReport):
                progress((step.done, step.total), desc=step.text)
                yield {status: step.text, live: live_rows(step.rows)}
                continue
            summary = step.summary
            stopped = " (stopped early)" if step.extra.get("stopped") else ""
            done = (
                f"Done{stopped}: {summary['questions']} questions, {len(summary['arms'])} arms, "
                f"{step.settings['seconds']:.0f} s. Stored as run `{step.run_id}`."
                if step.rows
                else "Stopped before any answer."
            )
            outputs: dict[Any, Any] = {status: done, live: live_rows(step.rows), token: None}
            if step.rows:
                from playground.ui import eval_charts  # Altair loads only once a chart is drawn

                csv_path, json_path = service.downloads(step.run_id)
                outputs |= {
                    findings: "\n".join(f"- {sentence}" for sentence in summary["findings"]),
                    arm_table: arm_rows(summary),
                    retrieval: retrieval_text(summary),
                    differences: difference_rows(summary),
                    quality_plot: eval_charts.quality_chart(summary),
                    latency_plot: eval_charts.latency_chart(summary),
                    tradeoff_plot: eval_charts.tradeoff_chart(summary),
                    rows_file: str(csv_path),
                    run_file: str(json_path),
                    history: history_rows(service.history(workspace_id)),
                }
            yield outputs

    private: dict[str, Any] = {"api_visibility": "private"}
    outputs = [
        token,
        status,
        live,
        findings,
        arm_table,
        retrieval,
        differences,
        quality_plot,
        latency_plot,
        tradeoff_plot,
        rows_file,
        run_file,
        history,
    ]
    # One evaluation at a time: it keeps the engine busy for minutes; comparisons still take turns with it.
    start.click(
        run,
        [upload, arms, limit, workspace, *controls.inputs()],
        outputs,
        concurrency_limit=1,
        concurrency_id="evaluate",
        **private,
    )
    stop.click(service.stop, token, None, queue=False, **private)

    @shows_errors
    def check_adapter(adapter: str | None, workspace_id: str | None) -> str:
        report = service.forgetting(adapter, workspace_id)
        return f"**{report.sentence}** (measured in {report.seconds:.0f} s)"

    check.click(
        check_adapter,
        [controls.adapter, workspace],
        forgetting,
        concurrency_limit=1,
        concurrency_id="evaluate",
        **private,
    )

    def earlier_runs(workspace_id: str | None) -> list[list[Any]]:
        return history_rows(service.history(workspace_id))

    refresh.click(earlier_runs, workspace, history, **private)
    if freshness is None:
        return earlier_runs, history

    @shows_errors
    def run_drill(
        source: str,
        old: str,
        new: str,
        asked: str,
        with_retrain: bool,
        workspace_id: str | None,
        *settings: Any,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple[str, list[list[Any]]]:
        change = Change(source or "", old or "", new or "", tuple((asked or "").splitlines()))
        options = compare_options(ROW_NAMES, workspace_id, *settings)
        report = freshness.run(change, options, bool(with_retrain), progress=lambda text: progress(None, desc=text))
        return f"**{report.sentence}**", freshness_rows(report)

    drill.click(
        run_drill,
        [drill_file, drill_old, drill_new, drill_questions, retrain, workspace, *controls.inputs()],
        [drill_result, drill_answers],
        concurrency_limit=1,
        concurrency_id="evaluate",
        **private,
    )
    return earlier_runs, history
