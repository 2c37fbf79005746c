"""Fine-tuning jobs: a queue that trains one job at a time, each in its own process, with its history on disk.

Every job has a folder under PLAYGROUND_HOME/jobs: `spec.json`, the `events.jsonl` its process writes, `pid` and
`process.json` (`adapters.jobs.process`), and `final.json` once an app has seen it end. The leading manager watches
every unfinished job's process, whoever started it (its own child, or the CLI running a job in its own process):
one that ended without a `done` event is marked failed with the reason within a second, and its staging folder is
removed. A restart of the app re-attaches to a job process that is still running, fails those that ended
meanwhile, and starts the queued ones. Every manager keeps a version number that changes whenever anything a page
shows of the jobs changes, so that a page polling it reads the folders only then.
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
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from adapters.files import atomic_write_json
from adapters.jobs.events import Done, JobEvent, Orphaned, last_done, parse_event
from adapters.jobs.process import PID, JobProcess, process_alive, read_pid, read_process, record_process
from adapters.jobs.run import CANCEL, EVENTS, SPEC, JobSpec, last_checkpoint, read_events, run_job
from adapters.jobs.view import JobView, job_view
from adapters.registry import AdapterRegistry, safe_adapter_name
from adapters.resolver import ResolvedModel

FINAL, LEADER = "final.json", ".leader"
POLL_S = 0.5
APP_STOPPED = "the app stopped while this job ran; its process is gone and no adapter was saved"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where a job process imports `adapters` from

logger = logging.getLogger(__name__)


def new_job_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def read_final(job_dir: Path) -> Done | None:
    """What an app concluded when the job's process ended (earlier versions wrote it without a `type`)."""
    path = job_dir / FINAL
    if not path.exists():
        return None
    event = parse_event({**json.loads(path.read_text()), "type": "done"})
    return event if isinstance(event, Done) else None


def write_final(job_dir: Path, done: Done) -> None:
    atomic_write_json(job_dir / FINAL, done.to_json())


class JobManager:
    """Queues jobs and runs one at a time in a child process; safe to use from several request threads."""

    def __init__(
        self,
        home: Path,
        on_finished: Callable[[JobView], None] | None = None,
        python: str = sys.executable,
        lead: bool = True,
    ) -> None:
        """`lead=False`: never start jobs, only submit, cancel and read (a command that lists or cancels must not
        start the queued jobs of an app that is not running)."""
        self.root = home / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.on_finished = on_finished
        self.python = python
        self._lock = threading.RLock()
        self._process: subprocess.Popen | None = None
        self._running: str | None = None
        self._attached: JobProcess | None = None  # a job process started by an earlier run of the app
        self._me = JobProcess.of(os.getpid())  # recorded as the app of the jobs it starts
        self._ended: dict[str, JobView] = {}  # explicit cache of ended jobs' views
        self._owners: dict[str, str] = {}  # explicit cache: a job's owner never changes once its spec is written
        self._version = 0
        self._seen: dict[str, tuple[Any, ...]] = {}  # what the supervisor last saw in each unfinished job's folder
        # Several managers may watch one home (the app, a test, a second app); only the one holding this lock
        # starts jobs, so one job trains at a time. The others submit, cancel and read. It is the kernel's lock
        # (flock) on an open file: the process holding it releases it however it ends, killed included.
        self._leader_lock = FileLock(self.root / LEADER, timeout=0, thread_local=False)
        self._may_lead = lead
        self.leader = lead and self._try_lead()
        _remove_stale_staging(home / "adapters")
        if self.leader:
            self._recover()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="jobs", daemon=True)
        self._thread.start()

    # ---- what the page and the CLI call ------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """Changes whenever anything a page shows of the jobs changes: an event logged, a state, the queue."""
        return self._version

    def submit(self, spec: JobSpec) -> JobView:
        """Queue a job; it starts at once when nothing else trains."""
        spec.id = spec.id or new_job_id()
        with self._lock:
            spec.write(self.root / spec.id)
            self._bump()
            self._start_next()
            return self.view(spec.id)

    def cancel(self, job_id: str) -> str:
        """A queued job is dropped; a running one stops after its current step and saves what it learnt."""
        with self._lock:
            view = self.view(job_id)
            if view.final:
                return f"{view.name} has already ended ({view.state})."
            if view.state == "queued" and self._running != job_id:
                self._finish(job_id, Done(state="cancelled", error="cancelled before it started"))
                return f"{view.name} was taken off the queue."
            (self.root / job_id / CANCEL).touch()
            return f"{view.name} stops after its current step and saves the adapter as incomplete."

    def resume(self, job_id: str) -> JobView:
        """A new job that goes on from a cancelled or failed job's last checkpoint, with its data and settings;
        ValueError, in words, when there is nothing to resume."""
        view = self.view(job_id)
        if view.state not in ("cancelled", "failed"):
            raise ValueError(f"{view.name} is {view.state}: only a cancelled or failed fine-tune can be resumed")
        if last_checkpoint(self.root / job_id) is None:
            raise ValueError(f"{view.name} stopped before its first checkpoint: launch it again instead")
        spec = JobSpec.read(self.root / job_id)
        return self.submit(
            replace(spec, id="", resume_from=job_id, created=datetime.now(UTC).isoformat(timespec="seconds"))
        )

    def view(self, job_id: str) -> JobView:
        if job_id in self._ended:  # an ended job never changes
            return self._ended[job_id]
        job_dir = self.root / job_id
        if not (job_dir / SPEC).exists():
            raise KeyError(f"no job {job_id!r}")
        final = read_final(job_dir)
        view = job_view(job_dir, JobSpec.read(job_dir), final)
        if final is not None:
            self._ended[job_id] = view
        if view.state == "queued":
            queue = self._queue()
            view.queue_position = queue.index(job_id) + 1 if job_id in queue else None
        return view

    def owner_of(self, job_id: str) -> str:
        """The workspace that launched the job on a shared server ("" : the owner, or a local run). Every visitor's
        page asks for every job's whenever a job moves, so each spec is read once."""
        if (owner := self._owners.get(job_id)) is None:
            owner = self._owners[job_id] = JobSpec.read(self.root / job_id).owner
        return owner

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
        with self._lock:
            self.leader = False  # a job submitted after this waits for another manager to start it
            self._leader_lock.release(force=True)  # another manager on this home may lead now

    # ---- the supervisor ---------------------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                with self._lock:
                    if not self.leader and self._may_lead and self._try_lead():  # the leader has gone: take over
                        self.leader = True
                        self._recover()
                    if self.leader:
                        self._check_running()
                        self._check_others()
                        self._start_next()
                    self._watch()
            except Exception:  # never let the supervisor die: report and go on
                logger.exception("job supervisor")

    def _try_lead(self) -> bool:
        try:
            self._leader_lock.acquire()
        except Timeout:
            return False
        return True

    def _bump(self) -> None:
        with self._lock:
            self._version += 1

    def _watch(self) -> None:
        """A new version when an unfinished job's folder shows something new, whoever wrote it: an event (its
        size and time), its process starting (`pid`), its end (`final.json`), a job added or ended."""
        seen = {job_id: _traces(self.root / job_id) for job_id in self._ids() if job_id not in self._ended}
        if seen != self._seen:
            self._seen = seen
            self._bump()

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
            record = read_process(self.root / job_id)
            if record is not None and not record.running(job_id):
                self._process_gone(job_id, record)

    def _process_gone(
        self, job_id: str, record: JobProcess | None, code: int | None = None, recovering: bool = False
    ) -> None:
        """The job's process has ended: its own `done` event if it wrote one, else failed with what is known."""
        job_dir = self.root / job_id
        events = read_events(job_dir)
        done = last_done(events)
        if done is None:
            view = self.view(job_id)
            if code is not None:  # our own child: its exit status says how it ended
                reason = _death(code, view)
            elif record is not None and recovering and _died_with_app(record, events):
                reason = APP_STOPPED
            else:  # someone else's process: its exit status is not ours to read
                reason = _lost(record, view)
            logger.warning("job %s failed: %s", job_id, reason)
            if record is not None:
                _remove_staging(job_dir, record.pid)
            done = Done.failed(reason)
        self._finish(job_id, done)

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
                [self.python, "-m", "adapters.jobs.run", str(job_dir)],
                cwd=PROJECT_ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            )
        record_process(job_dir, JobProcess.of(self._process.pid, app=self._me))
        self._running = job_id
        self._bump()

    def _finish(self, job_id: str, done: Done) -> None:
        write_final(self.root / job_id, done)
        self._bump()
        if self.on_finished is not None:
            try:
                self.on_finished(self.view(job_id))
            except Exception:  # a listener's failure must not lose the job's state
                logger.exception("job listener")

    def _recover(self) -> None:
        """After a restart: re-attach to a job process still running, fail the ones that ended while none watched."""
        for job_id in sorted(self._ids()):
            if (self.root / job_id / FINAL).exists():
                continue
            record = read_process(self.root / job_id)
            if record is None:
                continue  # never started: it stays queued
            if not record.running(job_id):
                self._process_gone(job_id, record, recovering=True)
            elif record.by_app and self._running is None:  # an earlier app's child: it counts as this one's
                self._running, self._attached = job_id, record
            # A CLI job (or a second one still running) is watched by _check_others.

    # ---- reading the folders -----------------------------------------------------------------------------------

    def _ids(self) -> list[str]:
        return [p.name for p in self.root.iterdir() if (p / SPEC).exists()]

    def _queue(self) -> list[str]:
        """Jobs waiting, oldest first: not ended, never started, not the running one."""
        return [
            job_id
            for job_id in sorted(self._ids())
            if job_id != self._running
            and job_id not in self._ended
            and not (self.root / job_id / FINAL).exists()
            and read_pid(self.root / job_id) is None
        ]


def _traces(job_dir: Path) -> tuple[Any, ...]:
    """What changes in a job's folder while it runs, read without opening a file."""
    try:
        events = (job_dir / EVENTS).stat()
    except OSError:
        stamp = None
    else:
        stamp = (events.st_size, events.st_mtime_ns)
    return stamp, (job_dir / PID).exists(), (job_dir / FINAL).exists()


def _died_with_app(record: JobProcess, events: list[JobEvent]) -> bool:
    """The app that started the job has stopped too, and the job never noticed it had gone: they ended together."""
    return record.app_gone() and not any(isinstance(event, Orphaned) for event in events)


def _remove_staging(job_dir: Path, pid: int) -> None:
    """What the job's dead process had begun to save (`.staging-<name>-<pid>`)."""
    spec = JobSpec.read(job_dir)
    if AdapterRegistry(Path(spec.adapters_dir)).remove_staging(spec.name, pid):
        logger.info("job %s: removed the adapter its process (pid %d) had begun to save", spec.id, pid)


def _remove_stale_staging(adapters_dir: Path) -> None:
    """Staging folders of processes that are gone (killed while no app watched) are half-saved adapters."""
    for name in AdapterRegistry(adapters_dir).remove_stale_staging(process_alive):
        logger.info("removed %s: the process saving it is gone", name)


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
    echo: Callable[[JobEvent], None] | None = None,
    general_set: str = "",
) -> Done:
    """Runs a job in this process (the CLI), recorded in the same history as the page's jobs; `echo` sees each
    event as it is logged."""
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
        general_set=general_set,
    )
    job_dir = home / "jobs" / spec.id
    job_dir.mkdir(parents=True)
    # The process first: a page's job queue on the same home must not take this job for a queued one, and a
    # running app watches this pid to fail the job if the process dies (no app is its parent).
    record_process(job_dir, JobProcess.of(os.getpid()))
    spec.write(job_dir)
    done = run_job(job_dir, echo=echo)
    write_final(job_dir, done)
    return done
