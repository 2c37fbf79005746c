"""Sentence-level support under the RAG, fine-tuned and hybrid panes: each sentence with a coloured tag naming the
chunk or training example that backs it, or "unsupported". Filled in after the answers are complete."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.compare import Comparison
from playground.support import CHUNK, NONE, TRAINING, AnswerSupport, SentenceSupport, SupportReport
from playground.support_data import SUPPORT_ARMS, SupportService
from playground.ui.errors import shows_errors

TITLES = {"rag": "RAG", "finetuned": "Fine-tuned", "hybrid": "Hybrid"}
# Translucent colours read on the light and the dark theme alike.
COLOURS = {CHUNK: "rgba(22, 163, 74, 0.25)", TRAINING: "rgba(37, 99, 235, 0.25)", NONE: "rgba(220, 38, 38, 0.25)"}
WAITING = "<p class='support-waiting'>Marked once every answer is complete.</p>"
TAG = "border-radius: 4px; padding: 0 5px; margin-right: 4px; font-size: 0.85em; white-space: nowrap"


def _tag(sentence: SentenceSupport) -> str:
    similarity = "" if sentence.similarity is None else f" {sentence.similarity:.2f}"
    if sentence.mark == CHUNK:
        label = f"chunk [{sentence.chunk}] {sentence.source}{similarity}"
    elif sentence.mark == TRAINING:
        label = f"training line {sentence.line}{similarity}"
    else:
        label = "unsupported"
    hover = f"“{sentence.evidence}” ({sentence.source})" if sentence.evidence else sentence.note
    return (
        f"<span class='support-tag support-{sentence.mark}' style='background: {COLOURS[sentence.mark]}; {TAG}' "
        f"title='{html.escape(hover, quote=True)}'>{html.escape(label)}</span>"
    )


def answer_html(title: str, answer: AnswerSupport | None) -> str:
    """One answer's sentences, each with its tag; an unsupported one says what came closest."""
    if answer is None:
        return ""
    head = f"<b>{html.escape(title)}</b>"
    if not answer.sentences:
        return f"<div class='support'>{head}: {html.escape(answer.note)}</div>"
    counts = f"{answer.count(CHUNK)} by a chunk, {answer.count(TRAINING)} by training, {answer.count(NONE)} unsupported"
    items = []
    for sentence in answer.sentences:
        note = f"<br><small>{html.escape(sentence.note)}</small>" if sentence.mark == NONE and sentence.note else ""
        items.append(f"<li>{_tag(sentence)}{html.escape(sentence.text)}{note}</li>")
    return (
        f"<div class='support'>{head} · {len(answer.sentences)} sentence{'s' * (len(answer.sentences) != 1)}: {counts}"
        f"<ol class='support-list' style='padding-left: 1.2em; margin: 4px 0'>{''.join(items)}</ol></div>"
    )


def view(report: SupportReport) -> tuple[str, ...]:
    """The method line, then one block per pane, in SUPPORT_ARMS order."""
    method = "\n\n".join([report.method, *report.notes])
    return (method, *(answer_html(TITLES[arm], report.answers.get(arm)) for arm in SUPPORT_ARMS))


@dataclass(frozen=True)
class SupportPanel:
    base: gr.HTML  # an empty cell under the base pane, so each block sits under its own pane
    cells: dict[str, gr.HTML]
    method: gr.Markdown
    finished: gr.State  # the complete comparison, handed from the answering event to the check

    def outputs(self) -> list[Any]:
        """What the check after the answers sets (`view`'s order)."""
        return [self.method, *self.cells.values()]

    def streamed(self) -> list[Any]:
        """What the answering event sets as well (`streaming`'s order)."""
        return [self.finished, *self.outputs()]

    def streaming(self, state: Comparison) -> tuple[Any, ...]:
        """The comparison so far for the check to read, and the blocks waiting while the answers stream."""
        return (state, "", *(WAITING if arm in state.rows else "" for arm in SUPPORT_ARMS))


def layout() -> SupportPanel:
    with gr.Row(equal_height=False):
        base = gr.HTML("", elem_id="support-base")
        cells = {arm: gr.HTML("", elem_id=f"support-{arm}") for arm in SUPPORT_ARMS}
    method = gr.Markdown(elem_id="support-method")
    return SupportPanel(base, cells, method, gr.State(None))


def checker(support: SupportService) -> Any:
    """The handler run after the answers: marks the finished comparison's sentences."""

    @shows_errors
    def check(state: Comparison | None) -> tuple[Any, ...]:
        if state is None or not state.done:  # stopped before the end: nothing complete to mark
            return (gr.skip(),) * (1 + len(SUPPORT_ARMS))
        return view(support.check(state))

    return check
