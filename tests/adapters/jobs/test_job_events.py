"""Typed job events: one parser, the old file format still read, a cut line skipped; the job manager's version and
the Fine-tune tab's snapshot, which reads nothing when nothing changed; the leader lock; pids seen through psutil."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import adapters.jobs.view
from adapters.jobs.events import (
    EVENT_TYPES,
    BackendChosen,
    Checkpoint,
    DatasetRead,
    Done,
    Eval,
    Forgetting,
    JobEvent,
    Orphaned,
    Phase,
    Saved,
    StateChanged,
    Step,
    UnknownEvent,
    last_done,
    parse_event,
)
from adapters.jobs.manager import FINAL, JobManager, new_job_id, read_final
from adapters.jobs.process import JobProcess, process_alive, process_start, record_process, same_process
from adapters.jobs.run import EVENTS, EventLog, JobSpec, read_events
from adapters.jobs.view import job_view
from adapters.registry import AdapterInfo, AdapterRegistry
from playground.finetune import FinetuneService
from playground.roles import Caller

SAMPLES: list[JobEvent] = [
    StateChanged(time=1767225600.5, state="running", pid=4242),
    DatasetRead(file="train.jsonl", sha256="ab12", format="chat", examples=20, train=18, holdout=2),
    BackendChosen(name="transformers", reason="no CUDA GPU on this machine"),
    Phase(text="preparing Unsloth kernels, about a minute on first use"),
    Step(step=3, total_steps=8, loss=2.5, learning_rate=2e-4, tokens_per_s=310.0, elapsed_s=1.5, eta_s=2.5),
    Eval(step=3, eval_loss=2.75),
    Checkpoint(step=50, path="/jobs/20261201-voice/checkpoints/checkpoint-50"),
    Saved(path="/adapters/.staging-voice-4242"),
    Forgetting(
        base_perplexity=12.1,
        adapter_perplexity=16.7,
        tokens=2310,
        base_correct=11,
        adapter_correct=9,
        questions=24,
        sentence="On general text the adapter's perplexity rose 38 %",
    ),
    Forgetting(error="MemoryError: "),
    Done(state="completed", adapter="voice", path="/adapters/voice", backend="transformers", steps=8, train_loss=2.25),
    Done.failed("the dataset has problems: line 2", ["line 2: no answer"]),
    Orphaned(parent=4141),
]

# What the job process wrote before events were typed (and still writes): one JSON object per line, "time" first.
OLD_EVENTS = """\
{"time": 1767225600.1, "type": "state", "state": "running", "pid": 4242}
{"time": 1767225601.2, "type": "dataset", "file": "train.jsonl", "sha256": "ab12", "format": "chat", "examples": 20, \
"train": 18, "holdout": 2}
{"time": 1767225601.3, "type": "backend", "name": "transformers", "reason": "no CUDA GPU on this machine"}
{"time": 1767225602.0, "type": "step", "step": 1, "total_steps": 2, "loss": 2.5, "learning_rate": 0.0002, \
"tokens_per_s": 310.0, "elapsed_s": 0.8, "eta_s": 0.8}
{"time": 1767225602.4, "type": "eval", "step": 1, "eval_loss": 2.75}
{"time": 1767225603.0, "type": "step", "step": 2, "total_steps": 2, "loss": 2.25, "learning_rate": 0.0001, \
"tokens_per_s": 305.0, "elapsed_s": 1.6, "eta_s": 0.0}
{"time": 1767225603.5, "type": "saved", "path": "/adapters/.staging-voice-4242"}
{"time": 1767225603.6, "type": "done", "state": "completed", "adapter": "voice", "path": "/adapters/voice", \
"backend": "transformers", "steps": 2, "total_steps": 2, "train_loss": 2.4, "eval_loss": null, "tokens_per_s": 300.0}
"""


def _job_dir(home: Path, name: str = "voice", events: str = "") -> Path:
    spec = JobSpec(new_job_id(), name, "base", "base", "train.jsonl", str(home / "adapters"))
    job_dir = home / "jobs" / spec.id
    spec.write(job_dir)
    (job_dir / EVENTS).write_text(events)
    return job_dir


def _dead_pid() -> int:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def _settled(version_of) -> object:
    """The version once it stays put: the supervisor's first look at a new job folder is a change too."""
    version = version_of()
    while True:
        time.sleep(1.2)  # more than two of the supervisor's polls
        if (now := version_of()) == version:
            return version
        version = now


def _until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


# ---- the events and their parser ----------------------------------------------------------------------------------


def test_every_event_type_round_trips_through_json():
    assert {event.kind for event in SAMPLES} == set(EVENT_TYPES)  # a new type needs a sample here
    for event in SAMPLES:
        line = json.dumps(event.to_json())
        assert parse_event(line) == event == parse_event(json.loads(line))
        assert type(parse_event(line)) is type(event)
    unknown = UnknownEvent(time=1.5, type_name="note", data={"text": "a newer version's event"})
    assert parse_event(json.dumps(unknown.to_json())) == unknown


def test_the_json_keys_stay_those_of_the_old_format():
    step = Step(time=2.0, step=1, total_steps=2, loss=2.5, learning_rate=1e-4, tokens_per_s=3.0, elapsed_s=1.0,
                eta_s=1.0)  # fmt: skip
    assert set(step.to_json()) == {"time", "type", "step", "total_steps", "loss", "learning_rate", "tokens_per_s",
                                   "elapsed_s", "eta_s"}  # fmt: skip
    assert Done.failed("boom").to_json() == {"type": "done", "state": "failed", "error": "boom"}
    assert Done.failed("bad data", ["line 2"]).to_json()["issues"] == ["line 2"]


def test_an_old_format_events_file_is_read(tmp_path):
    job_dir = _job_dir(tmp_path, events=OLD_EVENTS)
    events = read_events(job_dir)
    assert [e.kind for e in events] == ["state", "dataset", "backend", "step", "eval", "step", "saved", "done"]
    assert events[1] == DatasetRead(time=1767225601.2, file="train.jsonl", sha256="ab12", format="chat",
                                    examples=20, train=18, holdout=2)  # fmt: skip
    done = last_done(events)
    assert done is not None and done.adapter == "voice" and done.eval_loss is None and done.train_loss == 2.4
    view = job_view(job_dir, JobSpec.read(job_dir), None)
    assert (view.state, view.step, view.total_steps, view.adapter) == ("completed", 2, 2, "voice")
    assert view.losses == [(1, 2.5), (2, 2.25)] and view.eval_losses == [(1, 2.75)]
    assert view.dataset is not None and view.dataset.train == 18 and view.backend == "transformers"
    # An app of the earlier version wrote final.json without a type, sometimes with just a state.
    (job_dir / FINAL).write_text(json.dumps({"state": "failed", "error": "the app stopped"}))
    assert read_final(job_dir) == Done(state="failed", error="the app stopped")


def test_a_cut_last_line_is_skipped_with_a_warning(tmp_path, caplog):
    job_dir = _job_dir(tmp_path, events=OLD_EVENTS.splitlines()[0] + "\n" + OLD_EVENTS.splitlines()[1][:40])
    with caplog.at_level(logging.WARNING, logger="adapters.jobs.events"):
        events = read_events(job_dir)
    assert [e.kind for e in events] == ["state"]
    assert "malformed" in caplog.text
    assert [parse_event(line) for line in ("[1, 2]", '{"no": "type"}', "not json", '{"type": 3}')] == [None] * 4
    assert parse_event('{"type": "step", "step": 1, "newer": true}') == Step(step=1)  # unknown keys are left out


def test_an_unknown_type_is_kept_and_changes_nothing(tmp_path):
    lines = OLD_EVENTS.splitlines()
    job_dir = _job_dir(tmp_path, events="\n".join([*lines[:4], '{"type": "note", "text": "hi"}', *lines[4:]]) + "\n")
    events = read_events(job_dir)
    assert UnknownEvent(type_name="note", data={"text": "hi"}) in events
    assert job_view(job_dir, JobSpec.read(job_dir), None).state == "completed"


def test_the_log_stamps_each_event_and_echoes_it(tmp_path):
    seen: list[JobEvent] = []
    log = EventLog(tmp_path / EVENTS, seen.append)
    log(Eval(step=1, eval_loss=1.5))
    log(Saved(path="/x"))
    assert [type(e) for e in seen] == [Eval, Saved] and all(e.time for e in seen)
    assert read_events(tmp_path) == seen


# ---- processes and the leader lock ----------------------------------------------------------------------------------


def test_a_dead_pid_is_seen_as_gone():
    dead = _dead_pid()
    assert not process_alive(dead) and process_start(dead) is None
    assert not JobProcess(dead, 1767225600.0).running("any") and not JobProcess(dead).running("any")
    me = JobProcess.of(os.getpid())
    assert process_alive(os.getpid()) and me.running("any")
    assert not same_process(os.getpid(), me.start - 60)  # a pid now naming another process
    assert not JobProcess(os.getpid()).running("job-1")  # no start time: only a job process's command line counts


def test_one_manager_leads_a_home_the_next_takes_over_when_it_goes(tmp_path):
    first = JobManager(tmp_path)
    second = JobManager(tmp_path)
    try:
        assert first.leader and not second.leader
        first.close()
        _until(lambda: second.leader)
    finally:
        first.close()
        second.close()


def test_a_killed_leader_leaves_the_lock_free(tmp_path):
    (tmp_path / "jobs").mkdir()
    hold = (
        "import sys, time, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "jobs" / ".leader")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        manager = JobManager(tmp_path)
        try:
            assert not manager.leader
            holder.kill()
            holder.wait()
            _until(lambda: manager.leader)
        finally:
            manager.close()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# ---- versions and the Fine-tune tab's snapshot --------------------------------------------------------------------


def _running_job(home: Path) -> Path:
    """A job folder whose process is this one (alive): the manager watches it without starting anything."""
    job_dir = _job_dir(home, events=OLD_EVENTS.splitlines()[0] + "\n")
    record_process(job_dir, JobProcess.of(os.getpid()))
    return job_dir


def test_the_version_changes_when_a_job_logs_a_step(tmp_path):
    manager = JobManager(tmp_path)
    try:
        job_dir = _running_job(tmp_path)
        before = _settled(lambda: manager.version)
        EventLog(job_dir / EVENTS)(Step(step=1, total_steps=4, loss=2.0))
        _until(lambda: manager.version != before, timeout=2)
        assert manager.view(job_dir.name).step == 1
    finally:
        manager.close()


@pytest.fixture
def own_service(runtime, tmp_path):
    """The Fine-tune service on a home of its own (the session's model, no jobs or registered adapters)."""
    service = FinetuneService(dataclasses.replace(runtime, settings=runtime.settings.with_overrides(home=tmp_path)))
    yield service
    service.jobs.close()


def _counting(monkeypatch) -> list[str]:
    """Records each read of a job's events or of the registry made by this thread (the supervisor's are its own)."""
    reads: list[str] = []
    me = threading.current_thread()
    read_events, listing = adapters.jobs.view.read_events, AdapterRegistry.list

    def counted_events(job_dir):
        if threading.current_thread() is me:
            reads.append(f"events {job_dir.name}")
        return read_events(job_dir)

    def counted_listing(self, *args, **kwargs):
        if threading.current_thread() is me:
            reads.append("registry")
        return listing(self, *args, **kwargs)

    monkeypatch.setattr(adapters.jobs.view, "read_events", counted_events)
    monkeypatch.setattr(AdapterRegistry, "list", counted_listing)
    return reads


def test_the_snapshot_reads_nothing_when_nothing_changed(own_service, monkeypatch):
    caller = Caller(owner=True)
    job_dir = _running_job(own_service.runtime.settings.home)
    reads = _counting(monkeypatch)
    first = own_service.snapshot(caller, None)
    assert first is not None and first.jobs is not None and first.adapters is not None
    assert first.jobs.current is not None and first.jobs.current.id == job_dir.name and reads

    latest = first.version

    def version_now():
        nonlocal latest
        later = own_service.snapshot(caller, latest)
        latest = later.version if later is not None else latest
        return latest

    version = _settled(version_now)
    reads.clear()
    assert own_service.snapshot(caller, version) is None
    assert reads == []

    EventLog(job_dir / EVENTS)(Step(step=2, total_steps=4, loss=1.5))
    moved = _until(lambda: own_service.snapshot(caller, version), timeout=3)
    assert moved.jobs is not None and moved.jobs.current.step == 2
    assert moved.adapters is None and "registry" not in reads  # the adapters did not change: not listed again


def test_the_snapshot_lists_the_adapters_again_when_they_change(own_service):
    owner = Caller(owner=True)
    first = own_service.snapshot(owner, None)
    registry = own_service.registry
    with registry.staging("voice") as staged:
        (staged / "adapter_config.json").write_text("{}")
        base = own_service.runtime.model.base
        registry.commit(staged, AdapterInfo(name="voice", base_model=base, created="2026-01-01T00:00:00"))
    changed = own_service.snapshot(owner, first.version)
    assert changed is not None and changed.jobs is None and changed.adapters is not None
    assert "voice" in changed.adapters.managed and "voice" in changed.adapters.choices
    # Another caller (a visitor's browser) is shown its own rows.
    visitor = own_service.snapshot(Caller("visitor"), changed.version)
    assert visitor is not None and visitor.adapters is not None and visitor.jobs is None


def test_the_card_says_what_a_job_does_before_its_first_step(runtime, tmp_path, monkeypatch):
    """A job that may pick Unsloth says it prepares its kernels (its import takes about a minute), then which
    model it loads; the first step replaces the words with the step count."""
    from adapters.jobs.run import PREPARING_UNSLOTH, JobSpec, run_job
    from adapters.jobs.view import job_view
    from adapters.training.backends import UnslothBackend
    from playground.config import SAMPLE_DATA
    from playground.ui.finetune import _progress_html

    # As on a CUDA machine with unsloth installed whose import then fails: the job falls back, and said so.
    monkeypatch.setattr(UnslothBackend, "problem", lambda self, probe=True: "it raised at import" if probe else None)
    job = tmp_path / "job"
    job.mkdir()
    spec = JobSpec(
        id="j1",
        name="voice",
        base_model=runtime.model.path,
        base_name=runtime.model.base,
        dataset=str(SAMPLE_DATA / "finetune" / "train.jsonl"),
        adapters_dir=str(tmp_path / "adapters"),
        fit={"max_steps": 2, "batch_size": 4, "max_seq_length": 64, "eval_every": 0},
    )
    spec.write(job)
    seen: list[str] = []

    def watch(event) -> None:
        seen.append(_progress_html(job_view(job, spec, None)))

    assert run_job(job, echo=watch).state == "completed"
    events = read_events(job)
    phases = [e.text for e in events if e.kind == "phase"]
    assert phases == [PREPARING_UNSLOTH, f"loading {runtime.model.path} with transformers + peft"]
    assert any(PREPARING_UNSLOTH in html for html in seen) and any("loading" in html for html in seen)
    assert "step 2 of 2" in seen[-1] and PREPARING_UNSLOTH not in seen[-1]
    backend = next(e for e in events if e.kind == "backend")
    assert backend.name == "transformers" and "it raised at import" in backend.reason
