"""The process that runs a job, as its folder records it (`process.json`, then `pid`), and whether it still runs.

Pids are reused, so a record holds the process's start time as well: a live pid that started at another time is
another process.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from adapters.files import atomic_write_json, atomic_write_text

PROCESS, PID = "process.json", "pid"
# psutil derives a start time from the boot time, which moves with adjustments of the system clock; a reused pid
# never starts within a second of the process it replaces.
SAME_START_S = 1.0


def process_alive(pid: int) -> bool:
    """A live process has this id; a zombie (ended, not yet reaped) counts as gone."""
    if not psutil.pid_exists(pid):
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # alive, someone else's
        return True


def process_start(pid: int) -> float | None:
    """When the process started (seconds since the epoch); None when it is gone or cannot be read."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_process(pid: int, start: float | None) -> bool:
    if not process_alive(pid):
        return False
    now = process_start(pid)
    return now is None or start is None or abs(now - start) < SAME_START_S


def is_job_process(pid: int, job_id: str) -> bool:
    """Only a process running the job module on this job's folder counts (for records without a start time)."""
    try:
        command = " ".join(psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # cannot tell: trust the pid
        return True
    return "adapters.jobs.run" in command and job_id in command


@dataclass(frozen=True)
class JobProcess:
    pid: int
    start: float | None = None  # process_start(pid) when recorded; None: an older version's folder, or unreadable
    app_pid: int | None = None  # the app that started it as its child; None: the CLI runs it in its own process
    app_start: float | None = None

    @classmethod
    def of(cls, pid: int, app: JobProcess | None = None) -> JobProcess:
        """The record of a running process, started by `app` (None: it runs the job itself)."""
        return cls(pid, process_start(pid), app.pid if app else None, app.start if app else None)

    def running(self, job_id: str) -> bool:
        if self.start is None:  # only the command line tells
            return process_alive(self.pid) and is_job_process(self.pid, job_id)
        return same_process(self.pid, self.start)

    @property
    def by_app(self) -> bool:
        return self.app_pid is not None or self.start is None  # older versions recorded only the app's children

    def app_gone(self) -> bool:
        return self.app_pid is not None and not same_process(self.app_pid, self.app_start)


def record_process(job_dir: Path, record: JobProcess) -> None:
    """`process.json` before `pid`: whoever sees the pid (the queue, a watcher) finds the whole record."""
    atomic_write_json(job_dir / PROCESS, asdict(record))
    atomic_write_text(job_dir / PID, str(record.pid))


def read_pid(job_dir: Path) -> int | None:
    try:
        return int((job_dir / PID).read_text())
    except (OSError, ValueError):
        return None


def read_process(job_dir: Path) -> JobProcess | None:
    try:
        data = json.loads((job_dir / PROCESS).read_text())
        return JobProcess(
            data["pid"], _from_ticks(data.get("start")), data.get("app_pid"), _from_ticks(data.get("app_start"))
        )
    except (OSError, ValueError, TypeError, KeyError):  # none yet, or a folder from an older version: the bare pid
        pid = read_pid(job_dir)
        return None if pid is None else JobProcess(pid)


def _from_ticks(start: float | None) -> float | None:
    """An earlier version recorded clock ticks since boot (from /proc) where psutil counts seconds since the epoch."""
    boot = psutil.boot_time()
    if start is None or start >= boot:
        return start
    return boot + start / os.sysconf("SC_CLK_TCK")
