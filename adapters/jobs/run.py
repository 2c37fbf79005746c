"""One fine-tuning job, as its own process: `python -m adapters.jobs.run JOB_DIR`.

The job folder holds `spec.json` (what to train) and gets `events.jsonl`: one JSON object per line, flushed as it
happens (the typed events of `adapters.jobs.events`), which the app tails to draw progress and losses.
A file named `cancel` in the folder asks the job to stop after the current step; it then saves the adapter,
registered as incomplete. The CLI runs the same `run_job` in its own process. Run as a module, the process also
logs `orphaned` if the app that started it stops first.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.files import atomic_write_json
from adapters.jobs.events import (
    BackendChosen,
    Checkpoint,
    DatasetRead,
    Done,
    Forgetting,
    JobEvent,
    Orphaned,
    Phase,
    StateChanged,
    parse_lines,
)

SPEC, EVENTS, CANCEL, CHECKPOINTS = "spec.json", "events.jsonl", "cancel", "checkpoints"
FINAL_STATES = ("completed", "cancelled", "failed")
PREPARING_UNSLOTH = "preparing Unsloth kernels, about a minute on first use"


@dataclass
class JobSpec:
    id: str
    name: str  # the adapter's wished-for name (made unique when saved)
    base_model: str  # folder or hub id the job loads
    base_name: str  # the base model as the app names it; adapters are offered for this base
    dataset: str  # path of the training data
    adapters_dir: str  # the registry's folder
    dataset_format: str | None = None
    holdout: float = 0.1
    preset: str = "quick demo"
    lora: dict[str, Any] = field(default_factory=dict)  # overrides of the preset's LoraSettings
    fit: dict[str, Any] = field(default_factory=dict)  # overrides of the preset's FitSettings
    backend: str = "auto"
    device: str | None = None
    owner: str = ""  # on a shared server, the workspace that launched it ("" : the server's owner)
    general_set: str = ""  # folder of the forgetting check's general text and questions; "": no check
    source: str = ""  # where the data came from, in words, for the job's card and the registry; "": not said
    resume_from: str = ""  # the id of a cancelled or failed job whose last checkpoint this one goes on from
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @classmethod
    def read(cls, job_dir: Path) -> JobSpec:
        data = json.loads((job_dir / SPEC).read_text())
        return cls(**{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}})

    def write(self, job_dir: Path) -> None:
        atomic_write_json(job_dir / SPEC, asdict(self), indent=2)


class EventLog:
    """Appends one JSON object per line and flushes it, so a reader sees each event as soon as it happens."""

    def __init__(self, path: Path, echo: Callable[[JobEvent], None] | None = None) -> None:
        self.path = path
        self.echo = echo

    def __call__(self, event: JobEvent) -> None:
        event = replace(event, time=round(time.time(), 3))
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event.to_json()) + "\n")  # one write: a reader never sees half a line
            handle.flush()
        if self.echo is not None:
            self.echo(event)


def read_events(job_dir: Path) -> list[JobEvent]:
    """Every well-formed event, in order; a line cut short by a killed process is skipped."""
    path = job_dir / EVENTS
    if not path.exists():
        return []
    return parse_lines(path.read_text(encoding="utf-8", errors="replace"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_job(job_dir: Path, echo: Callable[[JobEvent], None] | None = None) -> Done:
    """Runs the job in this process; returns the final `done` event (also written to the log)."""
    log = EventLog(job_dir / EVENTS, echo)
    log(StateChanged(state="running", pid=os.getpid()))
    try:
        done = _train(JobSpec.read(job_dir), job_dir, log)
    except MemoryError:
        done = Done.failed("the base model and its training do not fit in this machine's memory")
    except OSError as error:
        if error.errno == errno.ENOSPC:
            done = Done.failed("the disk is full: the adapter could not be saved (nothing else was changed)")
        else:
            done = Done.failed(f"{type(error).__name__}: {error}")
    except Exception as error:  # reported on the page; the app keeps serving
        if "OutOfMemory" in type(error).__name__:  # torch's CUDA out-of-memory error
            done = Done.failed(f"the base model and its training do not fit in the GPU's memory ({error})")
        else:
            done = Done.failed(f"{type(error).__name__}: {error}")
    log(done)
    return done


def _train(spec: JobSpec, job_dir: Path, log: EventLog) -> Done:
    from adapters.datasets import load_dataset, split_holdout
    from adapters.registry import AdapterInfo, AdapterRegistry
    from adapters.training.backends import choose_backend, unsloth_may_run
    from adapters.training.train import TrainSpec, job_settings, train

    data_path = Path(spec.dataset)
    loaded = load_dataset(data_path, spec.dataset_format)
    if not loaded.ok:
        problems = [str(issue) for issue in loaded.issues[:20]]
        return Done.failed("the dataset has problems: " + "; ".join(problems), problems)
    train_set, eval_set = split_holdout(loaded.examples, spec.holdout)
    dataset = DatasetRead(
        file=data_path.name,
        sha256=file_sha256(data_path),
        format=loaded.format,
        examples=len(loaded.examples),
        train=len(train_set),
        holdout=len(eval_set),
        source=spec.source or None,
    )
    log(dataset)
    if unsloth_may_run(spec.backend):  # choosing it imports it: about a minute in a fresh process
        log(Phase(text=PREPARING_UNSLOTH))
    backend = choose_backend(spec.backend)
    config = _config(spec.base_model)
    lora, fit, sized = job_settings(spec.preset, spec.lora, spec.fit, config, backend.name, spec.device)
    log(BackendChosen(name=backend.name, reason="; ".join(filter(None, (backend.reason, sized)))))
    registry = AdapterRegistry(Path(spec.adapters_dir))
    cancel = job_dir / CANCEL
    resume = None
    if spec.resume_from:
        try:
            resume = resume_point(job_dir.parent / spec.resume_from, dataset.sha256)
        except ValueError as error:
            return Done.failed(str(error))
        log(Phase(text=f"going on from {resume.name} of job {spec.resume_from}"))
    with registry.staging(spec.name) as staged:
        train_spec = TrainSpec(spec.base_model, train_set, eval_set, lora, fit, staged, spec.device)
        train_spec.checkpoint_dir, train_spec.resume_from = job_dir / CHECKPOINTS, resume
        result = train(train_spec, backend, on_event=log, should_stop=cancel.exists)
        cancelled = result.status == "cancelled"
        forgetting = {} if cancelled or not spec.general_set else _check_forgetting(spec, staged, log)
        info = AdapterInfo(
            name=spec.name,
            base_model=spec.base_name,
            status="incomplete" if cancelled else "complete",
            dataset={k: v for k, v in dataset.to_json().items() if k != "type"},
            settings={
                "preset": spec.preset,
                "lora": asdict(lora),
                "fit": asdict(fit),
                **({"resumed_from": spec.resume_from} if spec.resume_from else {}),
            },
            backend=backend.name,
            duration_s=round(result.seconds, 2),
            steps=result.steps,
            train_loss=result.train_loss,
            eval_loss=result.eval_loss,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            job=spec.id,
            owner=spec.owner,
            forgetting=forgetting,
        )
        info = registry.commit(staged, info)
    if not cancelled:  # checkpoints are for resuming; a finished job needs none
        shutil.rmtree(job_dir / CHECKPOINTS, ignore_errors=True)
    return Done(
        state="cancelled" if cancelled else "completed",
        adapter=info.name,
        path=info.path,
        backend=backend.name,
        steps=result.steps,
        total_steps=result.total_steps,
        train_loss=result.train_loss,
        eval_loss=result.eval_loss,
        tokens_per_s=result.tokens_per_s,
    )


def last_checkpoint(job_dir: Path) -> tuple[int, Path] | None:
    """The step and folder of a job's last checkpoint still on disk, or None."""
    found = [e for e in read_events(job_dir) if isinstance(e, Checkpoint) and Path(e.path).is_dir()]
    return (found[-1].step, Path(found[-1].path)) if found else None


def resume_point(job_dir: Path, sha256: str) -> Path:
    """The checkpoint a new job resumes `job_dir`'s job from; ValueError, in words, when it cannot."""
    last = last_checkpoint(job_dir)
    if last is None:
        raise ValueError(f"job {job_dir.name} left no checkpoint to resume from")
    read = next((e for e in read_events(job_dir) if isinstance(e, DatasetRead)), None)
    if read is None or read.sha256 != sha256:
        raise ValueError(
            f"the dataset changed since job {job_dir.name} ran (its checkpoint learnt from other examples): "
            "launch a new fine-tune instead"
        )
    return last[1]


def _config(base_model: str) -> Any:
    """The base model's config (its sizes, to size the quick preset for a GPU); None when it cannot be read here,
    and the model's own loading then says why."""
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(base_model)
    except (OSError, ValueError):
        return None


def _check_forgetting(spec: JobSpec, adapter: Path, log: EventLog) -> dict[str, Any]:
    """Base model against the adapter just trained, on text and questions outside its data; a failure is reported
    and the adapter is kept all the same."""
    from adapters.forgetting import check_forgetting, load_general_set, peft_runner

    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
        base = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=dtype).to(device)
        model = PeftModel.from_pretrained(base, str(adapter)).eval()
        report = check_forgetting(peft_runner(model, tokenizer), load_general_set(Path(spec.general_set)))
    except Exception as error:  # the check is a measurement; the training it follows succeeded
        log(Forgetting(error=f"{type(error).__name__}: {error}"))
        return {"error": f"{type(error).__name__}: {error}"}
    found = report.to_json()
    log(Forgetting(**{k: v for k, v in found.items() if k in Forgetting.__dataclass_fields__}))
    return found


def note_when_orphaned(job_dir: Path, every_s: float = 0.5) -> None:
    """Logs an `orphaned` event once the app that started this process has gone, so that an app started later
    can tell a job that died with its app from one that outlived it and died afterwards."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        EventLog(job_dir / EVENTS)(Orphaned(parent=parent))

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m adapters.jobs.run JOB_DIR")
    note_when_orphaned(Path(sys.argv[1]))
    final = run_job(Path(sys.argv[1]))
    raise SystemExit(0 if final.state != "failed" else 1)
