"""Jobs are watched, not assumed: a job whose process is gone is failed with what is known, whoever started it
(the page or the CLI), and what its process had begun to save is removed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from adapters.jobs.manager import APP_STOPPED, FINAL, JobManager, new_job_id
from adapters.jobs.process import PROCESS, process_start
from adapters.jobs.run import EVENTS, JobSpec
from adapters.jobs.view import JobView
from adapters.registry import AdapterRegistry
from playground.config import PROJECT_ROOT, SAMPLE_DATA

DATA = SAMPLE_DATA / "finetune" / "train.jsonl"


def _cli_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "PLAYGROUND_HOME": str(home), "PLAYGROUND_DEMO_SIZE": "tiny", "HF_HUB_OFFLINE": "1"}
    env.pop("PLAYGROUND_BASE_MODEL", None)
    return env


def _dead_pid() -> int:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def _wait_for(manager: JobManager, predicate, timeout: float) -> JobView:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [view for view in manager.jobs() if predicate(view)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no job got there in {timeout} s: {manager.jobs()}")


def _staged(home: Path) -> list[str]:
    adapters = home / "adapters"
    return sorted(p.name for p in adapters.iterdir() if p.name.startswith(".staging")) if adapters.is_dir() else []


def test_a_killed_cli_job_is_failed_by_a_running_app_within_seconds(runtime, home, tmp_path):
    own = tmp_path / "home"
    for cached in ("models", "indexes"):  # the session's demo model and index: nothing is built here
        shutil.copytree(home / cached, own / cached)
    server = JobManager(own)  # stands in for a running app on the same home
    with (tmp_path / "cli.log").open("wb") as output:
        cli = subprocess.Popen(
            [sys.executable, "-m", "playground", "finetune", "--data", str(DATA), "--max-steps", "5000"],
            cwd=PROJECT_ROOT,
            env=_cli_env(own),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        running = _wait_for(server, lambda v: v.state == "running" and v.step >= 1, timeout=90)
        assert _staged(own) == [f".staging-train-{cli.pid}"]  # it is saving into its staging folder
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        killed = time.monotonic()
        done = _wait_for(server, lambda v: v.id == running.id and v.final, timeout=5)
        assert time.monotonic() - killed < 5
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        server.close()
    assert done.state == "failed", done
    assert f"the job's process (pid {cli.pid}) ended without finishing (killed, or it crashed)" in done.error
    assert f"last step {done.step} of 5000" in done.error and running.step <= done.step < 5000
    assert "app stopped" not in done.error
    assert _staged(own) == [] and AdapterRegistry(own / "adapters").list() == []


def _job(home: Path, name: str, process: dict, events: list[dict], final: dict | None = None) -> str:
    """A job folder as a job process leaves it, with the staging folder it had begun to save into."""
    spec = JobSpec(new_job_id(), name, "base", "base", str(DATA), str(home / "adapters"))
    job_dir = home / "jobs" / spec.id
    spec.write(job_dir)
    (job_dir / PROCESS).write_text(json.dumps(process))
    (job_dir / "pid").write_text(str(process["pid"]))
    steps = [{"type": "step", "step": 7, "total_steps": 300, "loss": 1.0}]
    lines = [{"type": "state", "state": "running"}, *steps, *events]
    (job_dir / EVENTS).write_text("".join(json.dumps(e) + "\n" for e in lines))
    if final is not None:
        (job_dir / FINAL).write_text(json.dumps(final))
    staging = home / "adapters" / f".staging-{name}-{process['pid']}"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "adapter_model.safetensors").write_bytes(b"half")
    return spec.id


def test_at_start_stale_staging_goes_and_jobs_that_died_unwatched_get_the_true_reason(tmp_path):
    dead, app_gone = _dead_pid(), _dead_pid()
    me = {"pid": os.getpid(), "start": process_start(os.getpid())}
    cli = _job(tmp_path, "cli", {"pid": dead, "start": 1.0}, [])
    with_app = _job(tmp_path, "with-app", {"pid": dead, "start": 1.0, "app_pid": app_gone, "app_start": 1.0}, [])
    outlived = _job(
        tmp_path, "outlived", {"pid": dead, "start": 1.0, "app_pid": app_gone, "app_start": 1.0}, [{"type": "orphaned"}]
    )
    reused = _job(tmp_path, "reused", {"pid": os.getpid(), "start": -1.0}, [])  # its pid now names another process
    completed = _job(tmp_path, "completed", {"pid": dead, "start": 1.0}, [], {"state": "completed", "adapter": "a"})
    cancelled = _job(tmp_path, "cancelled", {"pid": dead, "start": 1.0}, [{"type": "done", "state": "cancelled"}])
    alive = _job(tmp_path, "alive", me, [])  # this process: still running
    stale = tmp_path / "adapters" / f".staging-stale-{_dead_pid()}"
    stale.mkdir()

    manager = JobManager(tmp_path)
    try:
        views = {job_id: manager.view(job_id) for job_id in (cli, with_app, outlived, reused, completed, cancelled)}
        assert _staged(tmp_path) == [f".staging-alive-{os.getpid()}"]  # only the live job's
        assert manager.view(alive).state == "running"
    finally:
        manager.close()
    lost = f"the job's process (pid {dead}) ended without finishing (killed, or it crashed); last step 7 of 300"
    assert views[cli].state == "failed" and views[cli].error.startswith(lost)
    assert views[with_app].error == APP_STOPPED  # its app stopped and it ended with it
    assert views[outlived].error.startswith(lost)  # it went on after its app stopped, then died
    assert views[reused].state == "failed" and f"pid {os.getpid()}" in views[reused].error
    assert (views[completed].state, views[completed].adapter) == ("completed", "a")
    assert views[cancelled].state == "cancelled" and not views[cancelled].error


def test_a_running_app_fails_a_job_whose_pid_went_to_another_process(tmp_path):
    manager = JobManager(tmp_path)
    try:
        job_id = _job(tmp_path, "late", {"pid": os.getpid(), "start": process_start(os.getpid())}, [])
        time.sleep(1.2)
        assert manager.view(job_id).state == "running"  # the same process: alive
        record = json.loads((tmp_path / "jobs" / job_id / PROCESS).read_text())
        (tmp_path / "jobs" / job_id / PROCESS).write_text(json.dumps({**record, "start": -1.0}))
        deadline = time.monotonic() + 2
        while not manager.view(job_id).final and time.monotonic() < deadline:
            time.sleep(0.1)
        assert manager.view(job_id).state == "failed" and "ended without finishing" in manager.view(job_id).error
    finally:
        manager.close()
