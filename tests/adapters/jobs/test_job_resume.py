"""A cancelled or failed fine-tune goes on from its last checkpoint: the same losses as a run never stopped, steps
counted on from where it stopped, nothing resumed from a changed dataset or a job without a checkpoint."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.jobs.events import Checkpoint, Phase, Step
from adapters.jobs.manager import JobManager
from adapters.jobs.run import CANCEL, CHECKPOINTS, JobSpec, read_events, run_job
from adapters.registry import AdapterRegistry
from playground.config import SAMPLE_DATA

STEPS, STOP_AT, EVERY = 8, 5, 3


def _spec(runtime, tmp_path: Path, job_id: str, data: Path) -> JobSpec:
    return JobSpec(
        id=job_id,
        name="voice",
        base_model=runtime.model.path,
        base_name=runtime.model.base,
        dataset=str(data),
        adapters_dir=str(tmp_path / "adapters"),
        fit={"max_steps": STEPS, "batch_size": 4, "max_seq_length": 96, "eval_every": 0, "checkpoint_every": EVERY},
    )


def _run(jobs: Path, spec: JobSpec, stop_at: int | None = None):
    job = jobs / spec.id
    job.mkdir(parents=True)
    spec.write(job)

    def stop(event) -> None:
        if isinstance(event, Step) and event.step == stop_at:
            (job / CANCEL).touch()

    return run_job(job, echo=stop), read_events(job)


def _losses(events) -> dict[int, float]:
    return {e.step: e.loss for e in events if isinstance(e, Step)}


@pytest.fixture(scope="module")
def runs(runtime, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("resume")
    data = tmp_path / "train.jsonl"
    shutil.copy(SAMPLE_DATA / "finetune" / "train.jsonl", data)
    jobs = tmp_path / "jobs"
    stopped = _run(jobs, _spec(runtime, tmp_path, "a-stopped", data), stop_at=STOP_AT)
    resumed = _run(jobs, replace(_spec(runtime, tmp_path, "b-resumed", data), resume_from="a-stopped"))
    whole = _run(jobs, _spec(runtime, tmp_path, "c-whole", data))
    return tmp_path, stopped, resumed, whole


def test_a_resumed_job_learns_as_if_it_had_never_stopped(runs):
    _, (stopped, stopped_events), (resumed, resumed_events), (whole, whole_events) = runs
    assert stopped.state == "cancelled" and stopped.steps == STOP_AT
    assert [e.step for e in stopped_events if isinstance(e, Checkpoint)] == [EVERY, STOP_AT]
    assert resumed.state == whole.state == "completed" and resumed.steps == whole.steps == STEPS
    after = _losses(resumed_events)
    assert sorted(after) == list(range(STOP_AT + 1, STEPS + 1))  # counted on from where it stopped
    expected = _losses(whole_events)
    assert after == pytest.approx({step: expected[step] for step in after}, rel=1e-4)
    assert resumed.train_loss is not None and resumed.eval_loss == pytest.approx(whole.eval_loss, rel=1e-4)
    phases = [e.text for e in resumed_events if isinstance(e, Phase)]
    assert f"going on from checkpoint-{STOP_AT} of job a-stopped" in phases


def test_checkpoints_stay_only_where_a_job_may_still_be_resumed(runs):
    tmp_path, *_ = runs
    assert (tmp_path / "jobs" / "a-stopped" / CHECKPOINTS / f"checkpoint-{STOP_AT}").is_dir()
    assert not (tmp_path / "jobs" / "b-resumed" / CHECKPOINTS).exists()
    resumed = [a for a in AdapterRegistry(tmp_path / "adapters").list() if a.settings.get("resumed_from")]
    assert [(a.status, a.settings["resumed_from"]) for a in resumed] == [("complete", "a-stopped")]


def test_nothing_is_resumed_from_a_changed_dataset(runs, runtime):
    tmp_path, *_ = runs
    changed = tmp_path / "changed.jsonl"
    lines = (SAMPLE_DATA / "finetune" / "train.jsonl").read_text().splitlines()
    changed.write_text("\n".join(lines[1:]) + "\n")
    spec = replace(_spec(runtime, tmp_path, "d-changed", changed), resume_from="a-stopped")
    done, _ = _run(tmp_path / "jobs", spec)
    assert done.state == "failed" and "dataset changed since job a-stopped ran" in (done.error or "")


def test_the_manager_resumes_only_a_stopped_job_with_a_checkpoint(runs):
    tmp_path, *_ = runs
    manager = JobManager(tmp_path)
    try:
        with pytest.raises(ValueError, match="only a cancelled or failed fine-tune can be resumed"):
            manager.resume("c-whole")
        with pytest.raises(ValueError, match="before its first checkpoint"):
            manager.resume("d-changed")
        view = manager.resume("a-stopped")
        assert view.resumed_from == "a-stopped" and view.id != "a-stopped"
        done = manager.wait(view.id, timeout_s=180)
        assert done.state == "completed" and done.step == STEPS
    finally:
        manager.close()
