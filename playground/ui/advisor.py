"""The "Which approach?" tab: the questions, a button, and the advice in Markdown with the measurements it cites."""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.advisor import NOTHING_MEASURED, Advice, AdvisorService, reason_line
from playground.advisor_rules import QUESTIONS, Answers
from playground.ui.errors import shows_errors

INTRO = (
    "Answer a few questions about your use case and get **RAG**, **fine-tuning** or the **hybrid**, with the reasons "
    "in words. The advice also cites what this playground measured — an evaluation run (Evaluate tab), the latest "
    "freshness drill, the blind arena's votes — with their figures and 95 % intervals, and says where the "
    "measurements contradict your answers."
)
LATEST = "latest"


def markdown(advice: Advice) -> str:
    lines = [f"### {advice.headline}", "", "**Why**", ""]
    lines += [f"- {reason_line(rule)}" for rule in advice.decision.reasons] or ["- No answer favours it strongly."]
    if advice.decision.against:
        lines += ["", "**Pulling the other way**", ""]
        lines += [
            f"- {reason_line(rule)} *(favours {' / '.join(a.label for a in rule.favours)})*"
            for rule in advice.decision.against
        ]
    lines += ["", "**What was measured**", ""]
    lines += [f"- {cited.sentence}" for cited in advice.evidence] or [f"- {NOTHING_MEASURED}"]
    if advice.contradictions:
        lines += ["", "**Where the measurements disagree**", ""]
        lines += [f"- ⚠️ {note}" for note in advice.contradictions]
    return "\n".join(lines)


def build(service: AdvisorService, workspace: gr.BrowserState) -> None:
    gr.Markdown(INTRO)
    defaults = Answers()
    inputs: list[Any] = []
    with gr.Row():
        with gr.Column():
            for asked in QUESTIONS:
                value = getattr(defaults, asked.name)
                if asked.choices:
                    shown = [(label, choice) for choice, label in asked.choices]
                    box = gr.Radio(shown, value=value, label=asked.text, elem_id=f"advisor-{asked.name}")
                else:
                    box = gr.Checkbox(value=value, label=asked.text, elem_id=f"advisor-{asked.name}")
                inputs.append(box)
            run = gr.Dropdown(
                [("the latest run", LATEST), *service.runs(None)],  # a visitor's view until it is opened
                value=LATEST,
                label="Evaluation run to cite",
                elem_id="advisor-run",
            )
            ask = gr.Button("Which approach?", variant="primary", elem_id="advisor-ask")
        with gr.Column():
            shown_advice = gr.Markdown(elem_id="advisor-advice")

    def show_advice(chosen_run: str | None, workspace_id: str | None, *values: Any) -> str:  # `/advise` is the API's
        answers = Answers(**{asked.name: value for asked, value in zip(QUESTIONS, values, strict=True)})
        return markdown(service.advise(answers, None if chosen_run in (None, LATEST) else chosen_run, workspace_id))

    def runs(workspace_id: str | None) -> dict[str, Any]:  # runs stored since the page was served are offered too
        return gr.update(choices=[("the latest run", LATEST), *service.runs(workspace_id)])

    private: dict[str, Any] = {"api_visibility": "private"}
    ask.click(shows_errors(show_advice), [run, workspace, *inputs], shown_advice, **private)
    run.focus(shows_errors(runs), workspace, run, **private)
