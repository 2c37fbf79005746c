"""Every benchmark in turn, one table: `python -m playground bench all [--quick] [--json]`.

Each bench runs as `python -m playground bench NAME --json` in a process of its own, so its memory, imports and
threads end with it (importing Unsloth patches transformers for a whole process). Then one row per figure: what was
measured, the target its bench module names (its constant, read here), and whether it was met. `bench finetune
--gpu` is skipped where torch sees no CUDA GPU. A bench that fails shows its one-line error in its rows, the others
still run, and the exit code is 1. `--quick` gives every bench small settings so the whole run takes a couple of
minutes; its figures are not representative.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from adapters.errors import UserError
from playground.config import PROJECT_ROOT

log = logging.getLogger(__name__)

QUICK_NOTE = "quick: figures are not representative (few rounds, steps, chunks and tokens)"
NO_CUDA = "skipped: no CUDA GPU"
TIMEOUT_S = 3600  # per bench; the slowest takes minutes, and a hung one must not hold up the rest for ever
QUICK_TIMEOUT_S = 600
STDERR_TAIL = 50  # lines of a bench's stderr kept to find its error line
ERROR_CHARS = 160  # an error's length in the table; the JSON keeps the whole line
# Options of the single benches; `bench all` gives each its own (or --quick's), so one of these is a mistake.
SINGLE_BENCH_FLAGS = ("chunks", "steps", "rounds", "gpu", "tokens", "concurrency", "base", "seq_len")


@dataclass(frozen=True)
class Figure:
    """A figure of a bench's report: its key path (levels joined by dots), the `module.CONSTANT` under
    playground.bench that holds its target (None: the bench sets none), and whether the target is a ceiling."""

    path: str
    target: str | None = None
    at_most: bool = False
    unit: str = ""


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]  # after `python -m playground bench`
    quick: tuple[str, ...]  # added by --quick
    figures: tuple[Figure, ...]
    needs_cuda: bool = False


BENCHES = (
    Bench(
        "retrieval",
        ("retrieval",),
        ("--chunks", "2000", "--queries", "5"),
        tuple(Figure(f"speedup.{kind}", "retrieval.TARGET_SPEEDUP") for kind in ("dense", "bm25", "fused")),
    ),
    Bench("ingest", ("ingest",), ("--chunks", "30"), (Figure("ratio", "ingest.TARGET_RATIO"),)),
    Bench("finetune", ("finetune",), ("--steps", "3", "--rounds", "1"), (Figure("ratio", "finetune.TARGET_RATIO"),)),
    Bench(
        "finetune --gpu",
        ("finetune", "--gpu"),
        ("--steps", "3", "--rounds", "1", "--seq-len", "256"),
        (
            Figure("ratio_at_longest", "finetune.GPU_TARGET_RATIO"),
            Figure("memory_ratio_at_longest", "finetune.GPU_MEMORY_TARGET", at_most=True),
        ),
        needs_cuda=True,
    ),
    Bench(
        "compare",
        ("compare",),
        ("--rounds", "1", "--tokens", "8"),
        (
            Figure("ratio_side_by_side", "compare.TARGET_SIDE_BY_SIDE", at_most=True),
            Figure("ratio_three_way", "compare.TARGET_THREE_WAY", at_most=True),
            Figure("ratio_memory", "compare.TARGET_MEMORY", at_most=True),
            Figure("ratio_tokens_per_s", "compare.TARGET_TOKENS_PER_S"),
        ),
    ),
    Bench(
        "compare --concurrency",
        ("compare", "--concurrency", "1,4,16"),
        ("--rounds", "1", "--tokens", "4"),
        (Figure("ratio_at_16", "concurrency.TARGET_AT_16"),),
    ),
    Bench(
        "startup",
        ("startup",),
        ("--rounds", "1"),
        tuple(
            Figure(f"{kind}.{figure}", unit="s")
            for kind in ("cold", "warm")
            for figure in ("first_http_200_s", "first_answer_s")
        ),
    ),
)


@dataclass
class Outcome:
    """How one bench's process ended: `ok` (with its report), `failed` (with its error line) or `skipped`."""

    status: str
    command: str
    seconds: float = 0.0
    report: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Row:
    bench: str
    figure: str
    value: float | None
    unit: str
    target: float | None
    direction: str | None  # "≥" or "≤"; None without a target
    met: bool | None  # None: no target, or nothing measured
    note: str = ""  # why nothing was measured


# -- running the benches -----------------------------------------------------------------------------------------


def command_of(bench: Bench, quick: bool) -> list[str]:
    return ["bench", *bench.args, *(bench.quick if quick else ()), "--json"]


def run_bench(bench: Bench, quick: bool, cuda: bool) -> Outcome:
    args = command_of(bench, quick)
    shown = " ".join(["python -m playground", *args])
    if bench.needs_cuda and not cuda:
        return Outcome("skipped", shown, error=NO_CUDA)
    timeout = QUICK_TIMEOUT_S if quick else TIMEOUT_S
    started = time.monotonic()
    try:
        code, stdout, tail = _run([sys.executable, "-m", "playground", *args], timeout)
    except subprocess.TimeoutExpired:
        return Outcome("failed", shown, round(time.monotonic() - started, 1), error=f"timed out after {timeout} s")
    seconds = round(time.monotonic() - started, 1)
    if code != 0:
        return Outcome("failed", shown, seconds, error=error_line(tail, code))
    try:
        report = json_report(stdout)
    except ValueError:
        return Outcome("failed", shown, seconds, error="it printed no JSON report")
    missing = [figure.path for figure in bench.figures if lookup(report, figure.path) is None]
    if missing:
        return Outcome("failed", shown, seconds, report, f"the report has no {', '.join(missing)}")
    return Outcome("ok", shown, seconds, report)


def _run(command: list[str], timeout: float) -> tuple[int, str, list[str]]:
    """Runs `command`, passing its stderr (its progress) on as it comes; (exit code, stdout, stderr's last lines).
    It gets a process group of its own, so a bench's own children (startup's servers) end with it."""
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=STDERR_TAIL)
    out: list[str] = []
    readers = [
        threading.Thread(target=_echo, args=(process.stderr, tail), daemon=True),
        threading.Thread(target=lambda: out.append(process.stdout.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    try:
        code = process.wait(timeout)
    finally:
        if process.poll() is None:  # timed out, or this process was interrupted
            _stop_group(process)
    for reader in readers:
        reader.join()
    return code, "".join(out), list(tail)


def _echo(stream: IO[str], tail: deque[str]) -> None:
    for line in stream:
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def error_line(stderr_tail: Sequence[str], code: int) -> str:
    """The bench's `error: ...` line (a user mistake), else its last line (a traceback's exception), else the
    exit code."""
    said = [line.strip() for line in stderr_tail if line.strip()]
    for line in reversed(said):
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    ended = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return f"{said[-1]} ({ended})" if said else ended


def json_report(stdout: str) -> dict[str, Any]:
    """The report a bench printed with --json; anything a library printed before it is passed over."""
    start = 0 if stdout.startswith("{") else stdout.find("\n{") + 1
    if start == 0 and not stdout.startswith("{"):  # find gave -1: no line opens an object
        raise ValueError("no JSON object on stdout")
    found = json.loads(stdout[start:])
    if not isinstance(found, dict):
        raise ValueError("the report is not a JSON object")
    return found


def lookup(report: Mapping[str, Any] | None, path: str) -> float | None:
    found: Any = report
    for key in path.split("."):
        if not isinstance(found, Mapping) or key not in found:
            return None
        found = found[key]
    return float(found) if isinstance(found, int | float) and not isinstance(found, bool) else None


# -- the machine -------------------------------------------------------------------------------------------------

# In a process of its own: the GPU bench's processes should find no CUDA context held by this one.
_PROBE = """
import json, torch, transformers
cuda = torch.cuda.is_available()
print(json.dumps({
    "cuda": cuda,
    "gpu": torch.cuda.get_device_name(0) if cuda else None,
    "gpus": torch.cuda.device_count() if cuda else 0,
    "torch": torch.__version__,
    "transformers": transformers.__version__,
}))
"""


def probe_torch() -> dict[str, Any]:
    """Whether torch sees a CUDA GPU, its name, and the torch and transformers versions."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300, check=True, cwd=PROJECT_ROOT
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as error:
        log.warning("bench all: torch could not be asked about the GPU (%s); taking it that there is none", error)
        return {
            "cuda": False,
            "gpu": None,
            "gpus": 0,
            "torch": _version("torch"),
            "transformers": _version("transformers"),
        }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(torch_found: Mapping[str, Any]) -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "gpu": torch_found.get("gpu"),
        "gpus": torch_found.get("gpus", 0),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


# -- the table ---------------------------------------------------------------------------------------------------


def target_of(figure: Figure) -> float | None:
    """The figure's target, read from its bench module's constant (so a changed target shows here at once)."""
    if figure.target is None:
        return None
    module, constant = figure.target.rsplit(".", 1)
    return float(getattr(importlib.import_module(f"playground.bench.{module}"), constant))


def rows_of(bench: Bench, outcome: Outcome) -> list[Row]:
    """One row per figure; a bench that did not run gives its reason in its first row."""
    rows = []
    for index, figure in enumerate(bench.figures):
        goal = target_of(figure)
        value = lookup(outcome.report, figure.path) if outcome.status == "ok" else None
        met = None if value is None or goal is None else (value <= goal if figure.at_most else value >= goal)
        rows.append(
            Row(
                bench=bench.name,
                figure=figure.path,
                value=value,
                unit=figure.unit,
                target=goal,
                direction=None if goal is None else ("≤" if figure.at_most else "≥"),
                met=met,
                note=_note(outcome, first=index == 0),
            )
        )
    return rows


def _note(outcome: Outcome, first: bool) -> str:
    if outcome.status == "ok":
        return ""
    if outcome.status == "skipped":
        return (outcome.error or "skipped") if first else "skipped"
    return f"error: {outcome.error}" if first else "failed (as above)"


def _number(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def cells(row: Row) -> list[str]:
    if row.value is None:
        note = row.note if len(row.note) <= ERROR_CHARS else row.note[: ERROR_CHARS - 1] + "…"
        measured = note.replace("|", "\\|") or "—"
    else:
        measured = f"{_number(row.value)} {row.unit}".rstrip()
    target = "—" if row.target is None else f"{row.direction} {row.target:g}"
    met = "—" if row.met is None else ("yes" if row.met else "no")
    return [row.bench, row.figure, measured, target, met]


def table(rows: Sequence[Row]) -> str:
    """A Markdown table, for the terminal and the README alike."""
    lines = ["| benchmark | figure | measured | target | met |", "| --- | --- | --- | --- | --- |"]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(found: Mapping[str, Any]) -> str:
    cores = f"{found['cores']} cores"
    if found.get("usable_cores") and found["usable_cores"] != found["cores"]:
        cores = f"{found['usable_cores']} of {found['cores']} cores usable"
    gpu = "no GPU" if not found.get("gpu") else f"{found['gpu']}" + (f" × {found['gpus']}" if found["gpus"] > 1 else "")
    return f"{found['cpu']}, {cores}, {gpu} ({found['platform']}, Python {found['python']})"


def text_of(summary: Mapping[str, Any], rows: Sequence[Row]) -> str:
    versions = summary["versions"]
    lines = [
        f"bench all, {summary['date']}",
        f"machine: {machine_line(summary['machine'])}",
        f"versions: torch {versions['torch']}, transformers {versions['transformers']}",
    ]
    if summary["quick"]:
        lines.append(QUICK_NOTE)
    lines += ["", table(rows), ""]
    ran = ", ".join(
        f"{name} skipped" if found["status"] == "skipped" else f"{name} {found['seconds']:.0f} s"
        for name, found in summary["benches"].items()
    )
    lines.append(f"took {summary['seconds']:.0f} s: {ran}")
    if summary["failed"]:
        lines.append(f"failed: {', '.join(summary['failed'])}")
    return "\n".join(lines)


def summarise(
    outcomes: Mapping[str, Outcome],
    torch_found: Mapping[str, Any],
    date: dt.datetime,
    quick: bool,
    seconds: float,
    benches: Sequence[Bench] = BENCHES,
) -> dict[str, Any]:
    """The run as JSON: date, machine, versions, every row and every bench's full report, and the printed text."""
    rows = [row for bench in benches for row in rows_of(bench, outcomes[bench.name])]
    summary: dict[str, Any] = {
        "date": date.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "note": QUICK_NOTE if quick else None,
        "machine": machine(torch_found),
        "versions": {"torch": torch_found.get("torch"), "transformers": torch_found.get("transformers")},
        "seconds": round(seconds, 1),
        "failed": [name for name, outcome in outcomes.items() if outcome.status == "failed"],
        "rows": [asdict(row) for row in rows],
        "benches": {name: asdict(outcome) for name, outcome in outcomes.items()},
    }
    summary["text"] = text_of(summary, rows)
    return summary


# -- the command -------------------------------------------------------------------------------------------------


def run_all(quick: bool = False, benches: Sequence[Bench] = BENCHES) -> dict[str, Any]:
    date, started = dt.datetime.now(dt.UTC), time.monotonic()
    torch_found = probe_torch()
    outcomes: dict[str, Outcome] = {}
    for index, bench in enumerate(benches, start=1):
        log.info("bench all (%d/%d): python -m playground %s", index, len(benches), " ".join(command_of(bench, quick)))
        outcome = outcomes[bench.name] = run_bench(bench, quick, bool(torch_found.get("cuda")))
        if outcome.status == "ok":
            log.info("bench all: %s done in %.0f s", bench.name, outcome.seconds)
        elif outcome.status == "skipped":
            log.info("bench all: %s %s", bench.name, outcome.error)
        else:
            log.warning("bench all: %s failed after %.0f s: %s", bench.name, outcome.seconds, outcome.error)
    return summarise(outcomes, torch_found, date, quick, time.monotonic() - started, benches)


def main(args: argparse.Namespace) -> int:
    """`bench all`: prints the table (or, with --json, the summary); 1 when a bench failed."""
    given = [
        f"--{name.replace('_', '-')}" for name in SINGLE_BENCH_FLAGS if getattr(args, name, None) not in (None, False)
    ]
    if given:
        raise UserError(f"bench all gives each bench its own settings (or --quick's); drop {', '.join(given)}")
    summary = run_all(quick=args.quick)
    print(json.dumps(summary, indent=2, ensure_ascii=False) if args.json else summary["text"])
    return 1 if summary["failed"] else 0
