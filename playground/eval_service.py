"""The Evaluate tab's service: which question set, a run that can be stopped, its stored history and downloads."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from adapters.forgetting import ForgettingReport
from playground import eval_history
from playground.compare import CompareOptions, CompareService
from playground.evaluate import EvalReport, Progress, run
from playground.questions import QuestionSet, load_questions
from playground.roles import Roles


class EvaluateService:
    def __init__(self, compare: CompareService) -> None:
        self.compare = compare
        self.runtime = compare.runtime
        self.roles = Roles(self.runtime.settings)
        self._stopping: set[str] = set()  # run tokens asked to stop
        self._lock = threading.Lock()

    @property
    def home(self) -> Path:
        return self.runtime.settings.home

    def questions(self, upload: str | None, limit: int | None = None) -> QuestionSet:
        """The uploaded question file, or the configured (sample) set; the first `limit` questions only."""
        if upload:
            path = Path(upload)
            # Gradio keeps the upload under a random folder but its own name: messages use that name.
            found = load_questions(path, name=path.name)
        else:
            found = load_questions(self.runtime.settings.eval_data)
        if limit is not None and limit < 0:
            raise UserError(f"The number of questions must be 0 (all) or more, got {limit}.")
        return replace(found, items=found.items[:limit]) if limit else found

    def start(self) -> str:
        """A token for one run, by which it can be stopped."""
        return secrets.token_hex(8)

    def stop(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._stopping.add(token)

    def run(self, token: str, questions: QuestionSet, options: CompareOptions) -> Iterator[Progress | EvalReport]:
        """Progress after every question; at the end (or when stopped) the report, stored in the history."""
        try:
            for step in run(
                self.compare, questions, options, self.runtime.embedder.model, lambda: token in self._stopping
            ):
                if isinstance(step, EvalReport):
                    if step.rows:
                        eval_history.save(self.home, step, self.roles.tag(options.workspace))
                    step.extra["stopped"] = token in self._stopping
                yield step
        finally:
            with self._lock:
                self._stopping.discard(token)

    def forgetting(self, adapter: str | None, workspace: str | None = None) -> ForgettingReport:
        """The forgetting check of `adapter` (default: the one the app started with) against the base model, on
        the general text and questions; it runs on the engine, between comparisons."""
        from adapters.forgetting import check_forgetting, load_general_set

        name = adapter or self.runtime.model.adapter
        if not name:
            raise UserError("No adapter to check: train one in the Fine-tune tab first.")
        if not self.runtime.settings.general_data:
            raise UserError("The forgetting check is off: PLAYGROUND_GENERAL_DATA is empty.")
        general = load_general_set(Path(self.runtime.settings.general_data))
        if self.compare.attach is not None:
            self.compare.attach(name, workspace)  # may this browser use it? then it is loaded
        elif name not in self.runtime.engine.adapters:
            raise UserError(f"No adapter named {name!r} is loaded.")
        engine = self.runtime.engine
        return check_forgetting(lambda on, task: engine.with_adapter(name if on else None, task), general)

    def history(self, workspace: str | None = None) -> list[dict[str, Any]]:
        """The stored runs this browser may see (on a shared demo: its own), newest first."""
        caller = self.roles.caller(workspace)
        return [run for run in eval_history.runs(self.home) if self.roles.may_see(run["owner"], caller)]

    def downloads(self, run_id: str) -> tuple[Path, Path]:
        """The stored run's rows (CSV) and record (JSON)."""
        _, rows = eval_history.load(self.home, run_id)
        return rows, rows.with_name("run.json")
