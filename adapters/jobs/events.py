"""What a fine-tuning job reports, one typed event per line of its `events.jsonl`, and the one parser that reads them.

Each event is a frozen dataclass registered under its JSON `type` name; its fields are the line's other keys, so
files written before these classes existed read the same. A field left out of a line (or `null`) takes its
default, and `to_json` leaves out fields that are None. Adding an event type is one class here; if it changes what
the page shows, its `apply` says how.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self

if TYPE_CHECKING:
    from adapters.jobs.view import JobView

logger = logging.getLogger(__name__)

EVENT_TYPES: dict[str, type[JobEvent]] = {}  # the JSON `type` name -> its class, filled as the classes are defined


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    kind: ClassVar[str] = ""
    time: float | None = None  # seconds since the epoch; the job's log stamps it when written

    def __init_subclass__(cls, kind: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind:
            if kind in EVENT_TYPES:
                raise TypeError(f"two job event classes named {kind!r}")
            cls.kind = kind
            EVENT_TYPES[kind] = cls

    def to_json(self) -> dict[str, Any]:
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {"type": self.kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in values if v is not None}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Keys this class does not know (a newer version's) are left out; JSON lists become the fields' tuples."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known and v is not None}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def apply(self, view: JobView) -> None:
        """What this event changes in the job's view; most events change nothing there."""


@dataclass(frozen=True, kw_only=True)
class StateChanged(JobEvent, kind="state"):
    state: str = "running"
    pid: int | None = None  # the job's process

    def apply(self, view: JobView) -> None:
        view.state = self.state


@dataclass(frozen=True, kw_only=True)
class DatasetRead(JobEvent, kind="dataset"):
    file: str = ""
    sha256: str = ""
    format: str | None = None
    examples: int = 0
    train: int = 0
    holdout: int = 0
    source: str | None = None  # where the data came from, in words ("from RAG usage log, 12 of 20 answers kept")

    def apply(self, view: JobView) -> None:
        view.dataset = self


@dataclass(frozen=True, kw_only=True)
class BackendChosen(JobEvent, kind="backend"):
    name: str = ""
    reason: str = ""

    def apply(self, view: JobView) -> None:
        view.backend, view.backend_reason = self.name, self.reason


@dataclass(frozen=True, kw_only=True)
class Phase(JobEvent, kind="phase"):
    """What the job is doing before its first step, in words for its card (loading a model, compiling kernels)."""

    text: str = ""

    def apply(self, view: JobView) -> None:
        view.phase = self.text


@dataclass(frozen=True, kw_only=True)
class Step(JobEvent, kind="step"):
    step: int = 0
    total_steps: int = 0
    loss: float | None = None  # this step's training loss (noisy)
    learning_rate: float | None = None
    tokens_per_s: float | None = None  # real (non-padding) tokens per second of training so far
    elapsed_s: float | None = None
    eta_s: float | None = None

    def apply(self, view: JobView) -> None:
        view.phase = ""
        view.step, view.total_steps = self.step, self.total_steps
        view.loss, view.learning_rate = self.loss, self.learning_rate
        view.tokens_per_s, view.eta_s, view.elapsed_s = self.tokens_per_s, self.eta_s, self.elapsed_s
        if self.loss is not None:
            view.losses.append((self.step, self.loss))


@dataclass(frozen=True, kw_only=True)
class Eval(JobEvent, kind="eval"):
    step: int = 0
    eval_loss: float | None = None  # mean loss per answer token on the held-out examples

    def apply(self, view: JobView) -> None:
        if self.eval_loss is not None:
            view.eval_loss = self.eval_loss
            view.eval_losses.append((self.step, self.eval_loss))


@dataclass(frozen=True, kw_only=True)
class Checkpoint(JobEvent, kind="checkpoint"):
    """Training state saved (adapter, optimizer, scheduler, random state): a cancelled or failed job resumes here."""

    step: int = 0
    path: str = ""

    def apply(self, view: JobView) -> None:
        view.checkpoint_step = self.step


@dataclass(frozen=True, kw_only=True)
class Saved(JobEvent, kind="saved"):
    path: str = ""  # the folder the adapter was saved into (its staging folder, before the registry names it)


@dataclass(frozen=True, kw_only=True)
class Forgetting(JobEvent, kind="forgetting"):
    """The forgetting check after training: base model against the new adapter, outside the fine-tuning domain."""

    base_perplexity: float | None = None  # on the general text set
    adapter_perplexity: float | None = None
    tokens: int | None = None
    base_correct: int | None = None  # of `questions` general questions
    adapter_correct: int | None = None
    questions: int | None = None
    sentence: str = ""
    error: str | None = None  # why the check could not run (the adapter is saved all the same)

    def apply(self, view: JobView) -> None:
        view.forgetting = self.sentence or f"the forgetting check could not run: {self.error}"


@dataclass(frozen=True, kw_only=True)
class Done(JobEvent, kind="done"):
    """How the job ended: written by its process, or by the app when the process died without a word."""

    state: str = "failed"  # completed, cancelled or failed
    error: str | None = None
    issues: tuple[str, ...] | None = None  # the dataset's problems, when they failed the job
    adapter: str | None = None  # the registered adapter's name
    path: str | None = None
    backend: str | None = None
    steps: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None  # smoothed over the last steps
    eval_loss: float | None = None
    tokens_per_s: float | None = None

    @classmethod
    def failed(cls, reason: str, issues: Iterable[str] | None = None) -> Done:
        return cls(state="failed", error=reason, issues=None if issues is None else tuple(issues))

    def apply(self, view: JobView) -> None:
        view.state = self.state
        view.adapter = self.adapter if self.adapter is not None else view.adapter
        view.error = self.error if self.error is not None else view.error
        if self.state == "completed" and view.total_steps:
            view.step, view.eta_s = view.total_steps, 0.0


@dataclass(frozen=True, kw_only=True)
class Orphaned(JobEvent, kind="orphaned"):
    """The app that started the job's process stopped first; the process went on."""

    parent: int | None = None


@dataclass(frozen=True, kw_only=True)
class UnknownEvent(JobEvent):
    """A type this version does not know (a newer version wrote it): kept as it was, changing nothing."""

    type_name: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        stamp = {} if self.time is None else {"time": self.time}
        return {"type": self.type_name, **stamp, **self.data}


def parse_event(raw: str | bytes | Mapping[str, Any]) -> JobEvent | None:
    """The typed event of one line (or its decoded object); None, with a warning, for a malformed one: a process
    killed in the middle of a write leaves its last line cut short."""
    try:
        data = json.loads(raw) if isinstance(raw, str | bytes) else raw
    except ValueError:
        data = None
    kind = data.get("type") if isinstance(data, Mapping) else None
    if not isinstance(kind, str):
        logger.warning("skipped a malformed job event: %.200r", raw)
        return None
    event_type = EVENT_TYPES.get(kind)
    if event_type is None:
        rest = {k: v for k, v in data.items() if k not in {"type", "time"}}
        return UnknownEvent(time=data.get("time"), type_name=kind, data=rest)
    try:
        return event_type.from_json(data)
    except (TypeError, ValueError):
        logger.warning("skipped a malformed %s event: %.200r", kind, raw)
        return None


def parse_lines(text: str) -> list[JobEvent]:
    """Every well-formed event of an events file's text, in order; blank lines are not events."""
    events = (parse_event(line) for line in text.splitlines() if line.strip())
    return [event for event in events if event is not None]


def last_done(events: Iterable[JobEvent]) -> Done | None:
    """The job's own word on how it ended, if it wrote one."""
    return next((event for event in reversed(list(events)) if isinstance(event, Done)), None)
