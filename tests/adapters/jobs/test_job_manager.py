"""Fine-tune jobs in their own processes: events, queue, cancel, kill, restart, full disk; the registry never
loses or overwrites a finished adapter."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest

from adapters.jobs.events import Step
from adapters.jobs.manager import JobManager
from adapters.jobs.run import EVENTS, JobSpec, read_events, run_job
from adapters.registry import AdapterInfo, AdapterRegistry
from playground.config import SAMPLE_DATA

DATA = SAMPLE_DATA / "finetune" / "train.jsonl"


def _spec(runtime, home: Path, name: str, steps: int, **fit) -> JobSpec:
    return JobSpec(
        id="",
        name=name,
        base_model=runtime.model.path,
        base_name=runtime.model.base,
        dataset=str(DATA),
        adapters_dir=str(home / "adapters"),
        preset="quick demo",
        fit={"max_steps": steps, "batch_size": 4, "max_seq_length": 128, **fit},
    )


@pytest.fixture
def manager(tmp_path: Path):
    jobs = JobManager(tmp_path)
    yield jobs
    jobs.close()


def _wait_for(manager: JobManager, job_id: str, predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = manager.view(job_id)
        if predicate(view):
            return view
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never got there: {manager.view(job_id)}")


def test_a_job_runs_in_its_own_process_and_registers_its_adapter(runtime, manager, tmp_path):
    view = manager.submit(_spec(runtime, tmp_path, "voice", steps=6, eval_every=3))
    done = manager.wait(view.id, timeout_s=180)
    assert done.state == "completed", done
    assert done.step == done.total_steps == 6
    assert len(done.losses) == 6 and done.eval_losses and done.backend == "transformers"
    events = read_events(tmp_path / "jobs" / view.id)
    assert {e.kind for e in events} >= {"state", "dataset", "backend", "step", "eval", "done"}
    step = next(e for e in events if isinstance(e, Step))
    assert None not in (step.loss, step.learning_rate, step.tokens_per_s, step.elapsed_s, step.eta_s)
    assert step.total_steps == 6 and step.time is not None
    assert int((tmp_path / "jobs" / view.id / "pid").read_text()) != os.getpid()
    info = AdapterRegistry(tmp_path / "adapters").get(done.adapter)
    assert info is not None and info.status == "complete" and info.base_model == runtime.model.base
    assert info.dataset["sha256"] and info.dataset["holdout"] > 0 and info.settings["lora"]["rank"] == 16
    assert info.train_loss is not None and info.eval_loss is not None and info.created


def test_cancel_saves_a_usable_incomplete_adapter(runtime, manager, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    view = manager.submit(_spec(runtime, tmp_path, "stopped", steps=5000))
    _wait_for(manager, view.id, lambda v: v.step >= 2)
    assert "stops after its current step" in manager.cancel(view.id)
    done = manager.wait(view.id, timeout_s=120)
    assert done.state == "cancelled" and 2 <= done.step < 5000
    info = AdapterRegistry(tmp_path / "adapters").get(done.adapter)
    assert info is not None and info.status == "incomplete"
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(runtime.model.path), info.path)


def test_one_job_at_a_time_the_next_waits_in_the_queue(runtime, manager, tmp_path):
    first = manager.submit(_spec(runtime, tmp_path, "first", steps=4))
    second = manager.submit(_spec(runtime, tmp_path, "second", steps=4))
    assert manager.view(second.id).state == "queued" and manager.view(second.id).queue_position == 1
    # While the first runs, the second has not started.
    _wait_for(manager, first.id, lambda v: v.state == "running")
    assert manager.view(second.id).state == "queued"
    assert manager.wait(first.id, timeout_s=180).state == "completed"
    assert manager.wait(second.id, timeout_s=180).state == "completed"
    names = {a.name for a in AdapterRegistry(tmp_path / "adapters").list()}
    assert names == {"first", "second"}


def test_a_killed_job_fails_with_the_reason_and_saves_nothing(runtime, manager, tmp_path):
    view = manager.submit(_spec(runtime, tmp_path, "killed", steps=5000))
    running = _wait_for(manager, view.id, lambda v: v.step >= 1)
    os.kill(int((tmp_path / "jobs" / view.id / "pid").read_text()), signal.SIGKILL)
    done = manager.wait(view.id, timeout_s=60)
    assert done.state == "failed" and "killed (SIGKILL)" in done.error and running.step <= done.step
    assert AdapterRegistry(tmp_path / "adapters").list() == []
    assert not [p for p in (tmp_path / "adapters").iterdir() if p.name.startswith(".staging")]
    # The queue goes on: the next job runs.
    after = manager.submit(_spec(runtime, tmp_path, "after", steps=2))
    assert manager.wait(after.id, timeout_s=180).state == "completed"


def test_a_restart_keeps_history_reattaches_or_fails(runtime, tmp_path):
    first = JobManager(tmp_path)
    finished = first.submit(_spec(runtime, tmp_path, "kept", steps=2))
    first.wait(finished.id, timeout_s=180)
    survivor = first.submit(_spec(runtime, tmp_path, "survivor", steps=5000))
    _wait_for(first, survivor.id, lambda v: v.step >= 1)
    first.close()  # the app stops; its job process lives on

    second = JobManager(tmp_path)  # the app starts again
    try:
        assert second.view(finished.id).state == "completed"
        assert second.view(survivor.id).state == "running"  # re-attached
        pid = int((tmp_path / "jobs" / survivor.id / "pid").read_text())
        second.close()
        os.kill(pid, signal.SIGKILL)  # now it dies while no app watches
        time.sleep(0.5)
        third = JobManager(tmp_path)
        try:
            view = third.view(survivor.id)
            # It outlived the app that started it: what ended it was not the app stopping.
            assert view.state == "failed" and f"process (pid {pid}) ended without finishing" in view.error
            assert "app stopped" not in view.error
            assert third.view(finished.id).state == "completed"
        finally:
            third.close()
    finally:
        second.close()


def test_bad_data_fails_the_job_naming_the_line(runtime, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(DATA.read_text().splitlines()[0] + "\n" + '{"messages": [{"role": "bot", "content": "x"}]}\n')
    spec = _spec(runtime, tmp_path, "bad", steps=2)
    spec.dataset = str(data)
    spec.write(tmp_path / "job")
    done = run_job(tmp_path / "job")
    assert done.state == "failed" and "line 2" in done.error and done.issues
    assert AdapterRegistry(tmp_path / "adapters").list() == []


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (MemoryError(), "do not fit"),
    ],
)
def test_a_full_disk_or_too_big_a_model_leaves_finished_adapters_alone(
    runtime, tmp_path, monkeypatch, failure, expected
):
    import adapters.training.train

    registry = AdapterRegistry(tmp_path / "adapters")
    earlier = _finished_adapter(registry, "voice")

    def broken_train(*args, **kwargs):
        raise failure

    monkeypatch.setattr(adapters.training.train, "train", broken_train)
    spec = _spec(runtime, tmp_path, "voice", steps=2)
    spec.write(tmp_path / "job")
    done = run_job(tmp_path / "job")
    assert done.state == "failed" and expected in done.error
    assert [a.name for a in registry.list()] == ["voice"]
    assert (Path(earlier.path) / "adapter_config.json").read_text() == "{}"
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".staging")]
    last = json.loads((tmp_path / "job" / EVENTS).read_text().splitlines()[-1])
    assert last["type"] == "done"


def test_registry_names_never_overwrite(tmp_path):
    registry = AdapterRegistry(tmp_path)
    first = _finished_adapter(registry, "voice")
    second = _finished_adapter(registry, "voice")
    assert (first.name, second.name) == ("voice", "voice-2")
    assert registry.unique_name("../../etc/passwd") == "etc-passwd"
    registry.delete("voice")
    assert [a.name for a in registry.list()] == ["voice-2"]


def _finished_adapter(registry: AdapterRegistry, name: str) -> AdapterInfo:
    with registry.staging(name) as staged:
        (staged / "adapter_config.json").write_text("{}")
        return registry.commit(staged, AdapterInfo(name=name, base_model="base", created=time.strftime("%FT%T")))
