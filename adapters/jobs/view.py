"""What the page and the CLI show of a job: its spec, then each of its events applied in order."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adapters.jobs.events import DatasetRead, Done
from adapters.jobs.run import FINAL_STATES, JobSpec, read_events


@dataclass
class JobView:
    id: str
    name: str
    state: str  # queued, running, completed, cancelled, failed
    created: str
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    backend: str = ""
    backend_reason: str = ""
    checkpoint_step: int | None = None  # the last checkpoint's step: a cancelled or failed job resumes from it
    resumed_from: str = ""  # the job this one goes on from
    phase: str = ""  # what it does before its first step (loading, preparing kernels); "" once steps run
    dataset: DatasetRead | None = None
    adapter: str = ""
    error: str = ""
    queue_position: int | None = None
    forgetting: str = ""  # the forgetting check's sentence, once it ran
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


def job_view(job_dir: Path, spec: JobSpec, final: Done | None) -> JobView:
    view = JobView(spec.id, spec.name, "queued", spec.created, resumed_from=spec.resume_from)
    for event in read_events(job_dir):
        event.apply(view)
    if final is not None:  # what the app concluded when the process ended (it may have died without a word)
        final.apply(view)
    return view
