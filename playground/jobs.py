"""Fine-tuning jobs: a queue that trains one job at a time, each in its own process, with its history on disk.

Every job has a folder under PLAYGROUND_HOME/jobs: `spec.json`, the `events.jsonl` its process writes, `pid` and
`process.json` (that pid with its start time, and the app that started it), and `final.json` once an app has seen
it end. The leading manager watches every unfinished job's process, whoever started it (its own child, or the CLI
running a job in its own process): one that ended without a `done` event is marked failed with the reason within
a second, and its staging folder is removed. A restart of the app re-attaches to a job process that is still
running, fails those that ended meanwhile, and starts the queued ones.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.files import atomic_write_json
from adapters.job import CANCEL, FINAL_STATES, JobSpec, read_events, run_job
from adapters.registry import AdapterRegistry, safe_adapter_name
from adapters.resolver import ResolvedModel
from playground.config import PROJECT_ROOT
from playground.processes import process_alive

FINAL, PROCESS = "final.json", "process.json"
POLL_S = 0.5
APP_STOPPED = "the app stopped while this job ran; its process is gone and no adapter was saved"

logger = logging.getLogger(__name__)


@dataclass
class JobView:
    """What the page and the CLI show of a job, read from its events."""

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
    dataset: dict[str, Any] = field(default_factory=dict)
    adapter: str = ""
    error: str = ""
    queue_position: int | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


def job_view(job_dir: Path, spec: JobSpec, final: dict[str, Any] | None) -> JobView:
    view = JobView(spec.id, spec.name, "queued", spec.created)
    for event in read_events(job_dir):
        kind = event.get("type")
        if kind == "state":
            view.state = event.get("state", view.state)
        elif kind == "dataset":
            view.dataset = {k: v for k, v in event.items() if k not in {"type", "time"}}
        elif kind == "backend":
            view.backend, view.backend_reason = event.get("name", ""), event.get("reason", "")
        elif kind == "step":
            view.step, view.total_steps = event["step"], event["total_steps"]
            view.loss, view.learning_rate = event.get("loss"), event.get("learning_rate")
            view.tokens_per_s, view.eta_s = event.get("tokens_per_s"), event.get("eta_s")
            view.elapsed_s = event.get("elapsed_s")
            if view.loss is not None:
                view.losses.append((view.step, view.loss))
        elif kind == "eval" and event.get("eval_loss") is not None:
            view.eval_loss = event["eval_loss"]
            view.eval_losses.append((event["step"], event["eval_loss"]))
        elif kind == "done":
            _apply_done(view, event)
    if final is not None:  # what the app concluded when the process ended (it may have died without a word)
        _apply_done(view, final)
    return view


def _apply_done(view: JobView, event: dict[str, Any]) -> None:
    view.state = event.get("state", "failed")
    view.adapter = event.get("adapter", view.adapter)
    view.error = event.get("error", view.error)
    if view.state == "completed" and view.total_steps:
        view.step, view.eta_s = view.total_steps, 0.0


def new_job_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@dataclass(frozen=True)
class JobProcess:
    """The process that runs a job, as its folder records it. Pids are reused: the start time tells them apart."""

    pid: int
    start: float | None = None  # process_start(pid) when recorded; None: an older version's folder, or unreadable
    app_pid: int | None = None  # the app that started it as its child; None: the CLI runs it in its own process
    app_start: float | None = None

    def running(self, job_id: str) -> bool:
        if self.start is None:  # recorded by an older version: only the command line tells
            return process_alive(self.pid) and _is_job_process(self.pid, job_id)
        return _same_process(self.pid, self.start)

    @property
    def by_app(self) -> bool:
        return self.app_pid is not None or self.start is None  # older versions recorded only the app's children

    def app_gone(self) -> bool:
        return self.app_pid is not None and not _same_process(self.app_pid, self.app_start)


def process_start(pid: int) -> float | None:
    """When the process started (clock ticks since boot, or psutil's create time); None when it cannot be read."""
    try:  # field 22 of /proc/<pid>/stat; the command name before it may hold spaces and parentheses
        return float(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _same_process(pid: int, start: float | None) -> bool:
    if not process_alive(pid):
        return False
    now = process_start(pid)
    return now is None or start is None or now == start


class JobManager:
    """Queues jobs and runs one at a time in a child process; safe to use from several request threads."""

    def __init__(
        self,
        home: Path,
        on_finished: Callable[[JobView], None] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.root = home / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.on_finished = on_finished
        self.python = python
        self._lock = threading.RLock()
        self._process: subprocess.Popen | None = None
        self._running: str | None = None
        self._attached: JobProcess | None = None  # a job process started by an earlier run of the app
        self._me = JobProcess(os.getpid(), process_start(os.getpid()))  # recorded as the app of the jobs it starts
        self._ended: dict[str, JobView] = {}  # explicit cache of ended jobs' views
        # Several managers may watch one home (the app, a test, a second app); only the one holding this lock
        # starts jobs, so one job trains at a time. The others submit, cancel and read.
        self._lock_file = (self.root / ".leader").open("a")
        self.leader = _try_lock(self._lock_file)
        _remove_stale_staging(home / "adapters")
        if self.leader:
            self._recover()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="jobs", daemon=True)
        self._thread.start()

    # ---- what the page and the CLI call ------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> JobView:
        """Queue a job; it starts at once when nothing else trains."""
        spec.id = spec.id or new_job_id()
        with self._lock:
            spec.write(self.root / spec.id)
            self._start_next()
            return self.view(spec.id)

    def cancel(self, job_id: str) -> str:
        """A queued job is dropped; a running one stops after its current step and saves what it learnt."""
        with self._lock:
            view = self.view(job_id)
            if view.final:
                return f"{view.name} has already ended ({view.state})."
            if view.state == "queued" and self._running != job_id:
                self._finish(job_id, {"type": "done", "state": "cancelled", "error": "cancelled before it started"})
                return f"{view.name} was taken off the queue."
            (self.root / job_id / CANCEL).touch()
            return f"{view.name} stops after its current step and saves the adapter as incomplete."

    def view(self, job_id: str) -> JobView:
        if job_id in self._ended:  # an ended job never changes: each page polls every second
            return self._ended[job_id]
        job_dir = self.root / job_id
        if not (job_dir / "spec.json").exists():
            raise KeyError(f"no job {job_id!r}")
        final = self._final(job_id)
        view = job_view(job_dir, JobSpec.read(job_dir), final)
        if final is not None:
            self._ended[job_id] = view
        if view.state == "queued":
            queue = self._queue()
            view.queue_position = queue.index(job_id) + 1 if job_id in queue else None
        return view

    def owner_of(self, job_id: str) -> str:
        """The workspace that launched the job on a shared server ("" : the owner, or a local run)."""
        return JobSpec.read(self.root / job_id).owner

    def jobs(self) -> list[JobView]:
        """Every job, newest first."""
        return [self.view(job_id) for job_id in sorted(self._ids(), reverse=True)]

    def current(self) -> JobView | None:
        """The running job, else the newest one."""
        with self._lock:
            if self._running:
                return self.view(self._running)
        ids = sorted(self._ids(), reverse=True)
        return self.view(ids[0]) if ids else None

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobView:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not (view := self.view(job_id)).final:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {view.state} after {timeout_s} s")
            time.sleep(POLL_S / 2)
        return view

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._lock_file.close()  # releases the lock

    # ---- the supervisor ---------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.wait(POLL_S):
            if not self.leader:  # take over when the leading manager has gone
                with self._lock:
                    self.leader = _try_lock(self._lock_file)
                    if self.leader:
                        self._recover()
            if not self.leader:
                continue
            try:
                with self._lock:
                    self._check_running()
                    self._check_others()
                    self._start_next()
            except Exception:  # never let the supervisor die: report and go on
                logger.exception("job supervisor")

    def _check_running(self) -> None:
        if self._running is None:
            return
        job_id = self._running
        if self._process is not None:
            code = self._process.poll()
            if code is None:
                return
            record: JobProcess | None = JobProcess(self._process.pid)
        elif self._attached is not None and self._attached.running(job_id):
            return
        else:
            code, record = None, self._attached
        self._process, self._running, self._attached = None, None, None
        self._process_gone(job_id, record, code)

    def _check_others(self) -> None:
        """Jobs whose process this manager did not start (the CLI's, or one an earlier app left): fail those gone."""
        for job_id in self._ids():
            if job_id == self._running or job_id in self._ended:
                continue
            if (self.root / job_id / FINAL).exists():
                self.view(job_id)  # ended: its view is cached, so this loop never reads it again
                continue
            record = _read_process(self.root / job_id)
            if record is not None and not record.running(job_id):
                self._process_gone(job_id, record)

    def _process_gone(
        self, job_id: str, record: JobProcess | None, code: int | None = None, recovering: bool = False
    ) -> None:
        """The job's process has ended: its own `done` event if it wrote one, else failed with what is known."""
        job_dir = self.root / job_id
        said = _said_done(job_dir)
        if said is None:
            view = self.view(job_id)
            if code is not None:  # our own child: its exit status says how it ended
                reason = _death(code, view)
            elif record is not None and recovering and _died_with_app(job_dir, record):
                reason = APP_STOPPED
            else:  # someone else's process: its exit status is not ours to read
                reason = _lost(record, view)
            logger.warning("job %s failed: %s", job_id, reason)
            if record is not None:
                _remove_staging(job_dir, record.pid)
            said = {"type": "done", "state": "failed", "error": reason}
        self._finish(job_id, said)

    def _start_next(self) -> None:
        if self._running is not None or not self.leader:
            return
        queue = self._queue()
        if not queue:
            return
        job_id = queue[0]
        job_dir = self.root / job_id
        with (job_dir / "output.log").open("ab") as output:
            self._process = subprocess.Popen(
                [self.python, "-m", "adapters.job", str(job_dir)],
                cwd=PROJECT_ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            )
        pid = self._process.pid
        _record_process(job_dir, JobProcess(pid, process_start(pid), self._me.pid, self._me.start))
        self._running = job_id

    def _finish(self, job_id: str, event: dict[str, Any]) -> None:
        atomic_write_json(self.root / job_id / FINAL, event)
        if self.on_finished is not None:
            try:
                self.on_finished(self.view(job_id))
            except Exception:  # a listener's failure must not lose the job's state
                logger.exception("job listener")

    def _recover(self) -> None:
        """After a restart: re-attach to a job process still running, fail the ones that ended while none watched."""
        for job_id in sorted(self._ids()):
            if self._final(job_id) is not None:
                continue
            record = _read_process(self.root / job_id)
            if record is None:
                continue  # never started: it stays queued
            if not record.running(job_id):
                self._process_gone(job_id, record, recovering=True)
            elif record.by_app and self._running is None:  # an earlier app's child: it counts as this one's
                self._running, self._attached = job_id, record
            # A CLI job (or a second one still running) is watched by _check_others.

    # ---- reading the folders -----------------------------------------------------------------------------------

    def _ids(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if (p / "spec.json").exists()]

    def _final(self, job_id: str) -> dict[str, Any] | None:
        path = self.root / job_id / FINAL
        return json.loads(path.read_text()) if path.exists() else None

    def _queue(self) -> list[str]:
        """Jobs waiting, oldest first: not final, never started, not the running one."""
        waiting = [
            job_id
            for job_id in sorted(self._ids())
            if job_id != self._running and self._final(job_id) is None and _read_pid(self.root / job_id) is None
        ]
        return waiting


def _try_lock(handle: Any) -> bool:
    try:
        import fcntl
    except ImportError:  # no advisory locks on this system: every manager leads
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _read_pid(job_dir: Path) -> int | None:
    try:
        return int((job_dir / "pid").read_text())
    except (OSError, ValueError):
        return None


def _record_process(job_dir: Path, record: JobProcess) -> None:
    """`process.json` before `pid`: whoever sees the pid (the queue, a watcher) finds the whole record."""
    atomic_write_json(job_dir / PROCESS, asdict(record))
    (job_dir / "pid").write_text(str(record.pid))


def _read_process(job_dir: Path) -> JobProcess | None:
    try:
        data = json.loads((job_dir / PROCESS).read_text())
        return JobProcess(**{k: v for k, v in data.items() if k in JobProcess.__dataclass_fields__})
    except (OSError, ValueError, TypeError):  # none yet, or a folder from an older version: the bare pid
        pid = _read_pid(job_dir)
        return None if pid is None else JobProcess(pid)


def _said_done(job_dir: Path) -> dict[str, Any] | None:
    return next((e for e in reversed(read_events(job_dir)) if e.get("type") == "done"), None)


def _died_with_app(job_dir: Path, record: JobProcess) -> bool:
    """The app that started the job has stopped too, and the job never noticed it had gone: they ended together."""
    return record.app_gone() and not any(e.get("type") == "orphaned" for e in read_events(job_dir))


def _remove_staging(job_dir: Path, pid: int) -> None:
    """What the job's dead process had begun to save (`.staging-<name>-<pid>`)."""
    spec = JobSpec.read(job_dir)
    if AdapterRegistry(Path(spec.adapters_dir)).remove_staging(spec.name, pid):
        logger.info("job %s: removed the adapter its process (pid %d) had begun to save", spec.id, pid)


def _remove_stale_staging(adapters_dir: Path) -> None:
    """Staging folders of processes that are gone (killed while no app watched) are half-saved adapters."""
    for name in AdapterRegistry(adapters_dir).remove_stale_staging(process_alive):
        logger.info("removed %s: the process saving it is gone", name)


def _is_job_process(pid: int, job_id: str) -> bool:
    """Pids are reused: only a process running this job's module on this job's folder counts."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # no /proc here: trust the pid
    return "adapters.job" in command and job_id in command


def _death(code: int, view: JobView) -> str:
    """Why our own child ended: its exit status says."""
    where = f" at step {view.step} of {view.total_steps}" if view.total_steps else ""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        how = f"was killed ({name})"
    else:
        how = f"exited with code {code} without finishing"
    return f"the training process {how}{where}; no adapter was saved"


def _lost(record: JobProcess | None, view: JobView) -> str:
    """Why another process's job ended, as far as one can tell: no exit status, just that it is gone."""
    which = f" (pid {record.pid})" if record is not None else ""
    where = f"; last step {view.step} of {view.total_steps}" if view.total_steps else ""
    return f"the job's process{which} ended without finishing (killed, or it crashed){where}; no adapter was saved"


def run_here(
    home: Path,
    base: ResolvedModel,
    data: Path,
    name: str | None,
    preset: str,
    fit: dict[str, Any],
    holdout: float,
    backend: str,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Runs a job in this process (the CLI), recorded in the same history as the page's jobs."""
    spec = JobSpec(
        id=new_job_id(),
        name=safe_adapter_name(name or data.stem),
        base_model=str(base.path),
        base_name=base.name,
        dataset=str(data.resolve()),
        adapters_dir=str(home / "adapters"),
        holdout=holdout,
        preset=preset,
        fit=fit,
        backend=backend,
    )
    job_dir = home / "jobs" / spec.id
    job_dir.mkdir(parents=True)
    # The process first: a page's job queue on the same home must not take this job for a queued one, and a
    # running app watches this pid to fail the job if the process dies (no app is its parent).
    _record_process(job_dir, JobProcess(os.getpid(), process_start(os.getpid())))
    spec.write(job_dir)
    done = run_job(job_dir, echo=lambda event: log(_progress_line(event)))
    atomic_write_json(job_dir / FINAL, done)
    return done


def _progress_line(event: dict[str, Any]) -> str:
    kind = event.get("type")
    if kind == "step":
        eta = event.get("eta_s")
        return (
            f"step {event['step']}/{event['total_steps']} train loss (last step) {event['loss']:.4f} "
            f"{event.get('tokens_per_s', 0):.0f} tokens/s" + (f", ETA {eta:.0f} s" if eta is not None else "")
        )
    if kind == "eval":
        return f"held-out loss {event['eval_loss']:.4f} at step {event['step']}"
    if kind == "backend":
        return f"backend: {event['name']} ({event['reason']})"
    if kind == "dataset":
        return f"dataset: {event['train']} training and {event['holdout']} held-out examples ({event['format']})"
    return json.dumps({k: v for k, v in event.items() if k != "time"})
