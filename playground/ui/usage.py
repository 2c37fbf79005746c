"""The Compare tab's RAG usage log (see `playground.usage_log`): the consent box, the "good answer" mark for the RAG
pane of the latest comparison, and deleting the log. The Fine-tune tab's "Use my RAG answers" trains on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from adapters.errors import UserError
from playground.ui.errors import shows_errors
from playground.usage_log import UsageLog

OFF = gr.update(value=False, interactive=False)  # the mark, when there is no logged answer to mark
PRIVATE: dict[str, Any] = {"api_visibility": "private"}


@dataclass(frozen=True)
class UsagePanel:
    usage: UsageLog
    consent: gr.Checkbox
    good: gr.Checkbox
    forget: gr.Button
    note: gr.Markdown
    latest: gr.State  # the id of the latest logged answer: the one the mark applies to

    def log_after(self, answered: Any, comparison: gr.State, workspace: gr.BrowserState) -> None:
        """Logs each comparison that `answered` finishes (its JSON document in `comparison`), with consent."""
        answered.success(
            self._logger(), [comparison, self.consent, workspace], [self.latest, self.good, self.note], **PRIVATE
        )

    def _logger(self) -> Any:
        @shows_errors
        def log_answer(document: dict[str, Any] | None, consent: bool, workspace_id: str | None) -> tuple[Any, ...]:
            if not consent or not document:
                return None, OFF, gr.skip()
            entry = self.usage.record(workspace_id, document)
            if entry is None:
                return None, OFF, "RAG gave no answer, so nothing was logged."
            held = len(self.usage.read(workspace_id).answers)
            return (
                entry.id,
                gr.update(value=False, interactive=True),
                f"Logged: your log holds {held} answer(s). Tick “good” when RAG's answer is right; to train on them: "
                "Fine-tune tab → “…or build one from documents” → **Use my RAG answers**.",
            )

        return log_answer


def layout(usage: UsageLog, consent: bool, workspace: gr.BrowserState) -> UsagePanel:
    """The row under the answer panes; `consent`: the box's default (`usage_log.consent_default`)."""
    with gr.Row(equal_height=True):
        box = gr.Checkbox(
            value=consent,
            label="Keep a log of my questions with RAG's answers and their chunks, to fine-tune on them "
            "(stored on this server for this browser only)",
            elem_id="usage-consent",
            scale=3,
        )
        good = gr.Checkbox(
            value=False,
            label="RAG's answer is good (keep it for fine-tuning)",
            interactive=False,
            elem_id="usage-good",
            scale=2,
        )
        forget = gr.Button("Forget my log", size="sm", elem_id="usage-forget", scale=1)
    note = gr.Markdown(elem_id="usage-note")
    panel = UsagePanel(usage, box, good, forget, note, gr.State(None))

    @shows_errors
    def mark(is_good: bool, answer_id: str | None, logging: bool, workspace_id: str | None) -> str:
        if not logging:
            raise UserError("The log is off: tick “Keep a log of my questions…” first.")
        usage.mark(workspace_id, answer_id, is_good)
        return "Marked good: kept for fine-tuning." if is_good else "Mark taken back."

    def switch(logging: bool) -> tuple[Any, ...]:
        if logging:
            return "The log is on: each question with RAG's answer and its chunks is kept for this browser.", OFF, None
        return "The log is off: nothing more is kept. What was logged stays until you press “Forget my log”.", OFF, None

    @shows_errors
    def delete(workspace_id: str | None) -> tuple[Any, ...]:
        return f"Forgot your log ({usage.clear(workspace_id)} answers deleted).", OFF, None

    good.input(mark, [good, panel.latest, box, workspace], note, **PRIVATE)
    box.input(switch, box, [note, good, panel.latest], **PRIVATE)
    forget.click(delete, workspace, [note, good, panel.latest], **PRIVATE)
    return panel
