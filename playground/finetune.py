"""The Fine-tune tab's service: validate a dataset, launch and watch jobs, and manage the trained adapters.

Jobs train on the base model the app has loaded, so a finished adapter is attached to the running engine at
once and the Compare tab can use it without reloading anything.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from adapters.datasets import (
    LoadedDataset,
    dataset_stats,
    find_duplicates,
    load_dataset,
    split_holdout,
    write_chat_jsonl,
)
from adapters.errors import UserError
from adapters.jobs.manager import JobManager
from adapters.jobs.run import JobSpec, file_sha256
from adapters.jobs.view import JobView
from adapters.registry import AdapterInfo, AdapterRegistry, fits_base, safe_adapter_name
from adapters.served import ServedEngine
from adapters.training.backends import AUTO, BACKENDS, BackendChoice, choose_backend, describe
from adapters.training.common import FitSettings, LoraSettings, total_steps
from adapters.training.memory import MemoryEstimate, job_estimate
from adapters.training.train import PRESETS, preset_settings
from pipelines.indexing import chunks_of
from playground.demo_limits import DemoLimits
from playground.qa_builder import BuildReport, build_pairs, pairs_from_rows
from playground.roles import Caller, Roles
from playground.runtime import Runtime
from playground.usage_log import UsageLog, UsageSelection, select, source_description

logger = logging.getLogger(__name__)

ISSUE_HEADERS = ["Line", "Field", "Problem"]
SOURCE_SUFFIX = ".source.txt"  # beside a dataset the page made: where its data came from, in words


@dataclass
class Validation:
    dataset: LoadedDataset
    stats: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.dataset.ok

    def issue_rows(self) -> list[list[Any]]:
        return [[_where(i.line, i.item), i.field or "", i.message] for i in self.dataset.issues]


class FinetuneService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.roles = Roles(runtime.settings)
        self.registry = AdapterRegistry(runtime.settings.home / "adapters")
        self.jobs = JobManager(runtime.settings.home, on_finished=self._adopt)
        self.usage = UsageLog(runtime.settings.home)  # the Compare tab logs into it, with the user's consent

    # ---- backend and settings ----------------------------------------------------------------------------------

    def backend(self, prefer: str = AUTO) -> BackendChoice:
        """The backend a job would pick, without importing unsloth here (the job's own process does that).
        A named backend that cannot run raises BackendUnavailable (a UserError) saying why."""
        return choose_backend(prefer, probe=False)

    @staticmethod
    def backend_options() -> list[tuple[str, str]]:
        """(words, value) for the page's selector: "auto", then every registered backend."""
        return [("auto (the first that can run)", AUTO)] + [(b.label, name) for name, b in BACKENDS.items()]

    @staticmethod
    def backend_note(prefer: str) -> str:
        """One line on what a choice means on this machine: what "auto" picks, or why a backend cannot run."""
        return describe(prefer or AUTO, probe=False)

    def base_model_name(self) -> str:
        return self.runtime.model.base

    @staticmethod
    def presets() -> list[str]:
        return list(PRESETS)

    @staticmethod
    def preset(name: str) -> tuple[LoraSettings, FitSettings]:
        if name not in PRESETS:
            raise UserError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
        return PRESETS[name]

    # ---- datasets ----------------------------------------------------------------------------------------------

    def validate(self, path: Path, max_seq_length: int | None = None) -> Validation:
        loaded = load_dataset(path)
        stats: dict[str, Any] = {"format": loaded.format, "problems": len(loaded.issues)}
        tokenizer = self.runtime.engine.tokenizer
        if loaded.examples and tokenizer is not None:
            stats.update(dataset_stats(loaded.examples, tokenizer, max_seq_length).to_json())
        elif loaded.examples:  # a served generator without the base model's tokenizer here: no lengths in tokens
            examples = loaded.examples
            stats.update(
                count=len(examples),
                duplicate_lines=[list(pair) for pair in find_duplicates(examples)],
                samples=[{"question": e.question, "answer": e.answer, "line": e.line} for e in examples[:3]],
                tokens_note=f"not measured: {self._no_local_model('tokenizer')}",
            )
        return Validation(loaded, stats)

    def _no_local_model(self, what: str) -> str:
        """Why the base model's tokenizer or config is not here (a served generator found none), in one line."""
        engine = self.runtime.engine
        why = engine.files_note if isinstance(engine, ServedEngine) else ""
        return f"the base model's {what} is not available here ({why or 'not found'})"

    def build_from_documents(self, origin: str, workspace_id: str | None, limit: int = 200) -> BuildReport:
        """Question–answer pairs from the session's uploads ("mine") or the shared knowledge base ("shared")."""
        if origin == "mine":
            store = self.runtime.workspaces.store(workspace_id) if workspace_id else None
            if store is None or not store.count_documents():
                raise UserError("You have not uploaded documents yet (Documents tab).")
        else:
            store = self.runtime.store
        writer = None if self.runtime.model.is_demo else self.runtime.engine
        return build_pairs(chunks_of(store), writer, limit)

    def keep_upload(self, workspace_id: str | None, path: Path, cache: Path | None) -> Path:
        """An uploaded dataset moved out of the upload cache (which serves it to anyone) into the browser's
        workspace, where it stays until the workspace goes."""
        workspaces = self.runtime.workspaces
        return workspaces.keep(workspaces.open(workspace_id), path, cache)

    def save_pairs(self, rows: list[list[Any]], usage_total: int | None = None) -> Path:
        """The reviewed pairs as a chat JSONL dataset, ready to validate and launch. `usage_total`: the rows came
        from the RAG usage log, which held that many answers (the job's card then says how many were kept)."""
        pairs = pairs_from_rows(rows)
        if not pairs:
            raise UserError("There are no pairs with both a question and an answer to train on.")
        folder = self.jobs.root / "datasets" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        if usage_total is None:
            return write_chat_jsonl([p.to_example() for p in pairs], folder / "from-documents.jsonl")
        path = write_chat_jsonl([p.to_example() for p in pairs], folder / "from-rag-usage.jsonl")
        path.with_name(path.name + SOURCE_SUFFIX).write_text(source_description(len(pairs), usage_total))
        return path

    def usage_pairs(self, workspace_id: str | None, consent: bool) -> UsageSelection:
        """The session's logged RAG answers worth training on (see `playground.usage_log.select`)."""
        if not consent:
            raise UserError(
                "Your RAG answers are not logged: tick “Keep a log of my questions…” in the Compare tab, ask, then "
                "press this again."
            )
        stored = self.usage.read(workspace_id)
        if not stored.answers:
            raise UserError("Your RAG usage log is empty: ask questions in the Compare tab with the log ticked first.")
        selection = select(stored)
        if not selection.kept:
            raise UserError(
                f"None of your {selection.total} logged RAG answers can be used ({selection.why_dropped()}): "
                "mark good answers in the Compare tab."
            )
        return selection

    # ---- jobs --------------------------------------------------------------------------------------------------

    def launch(
        self,
        path: Path,
        name: str,
        preset: str,
        lora: dict[str, Any] | None = None,
        fit: dict[str, Any] | None = None,
        holdout: float = 0.1,
        backend: str = AUTO,
        caller: Caller = Caller(owner=True),
    ) -> JobView:
        """Checks everything a job would trip over before queueing it: data, settings, backend, names, this server's
        limits."""
        self.preset(preset)  # an unknown preset fails here, before anything is queued
        self.limits.check_jobs(self._active_jobs())
        self.backend(backend)  # as does a backend that cannot run on this machine
        lora = _known(lora or {}, LoraSettings)
        fit = _known(fit or {}, FitSettings)
        _check_settings(lora, fit, holdout)
        validation = self.validate(path)
        if not validation.ok:
            first = "; ".join(str(issue) for issue in validation.dataset.issues[:3])
            raise UserError(f"Fix the dataset first ({len(validation.dataset.issues)} problems): {first}")
        train_set, _ = split_holdout(validation.dataset.examples, holdout)
        self.limits.check_steps(total_steps(len(train_set), preset_settings(preset, lora, fit)[1]))
        if checked := self.memory_estimate(preset, lora, fit, backend, validation.stats.get("max_tokens")):
            peak, free = checked
            if problem := peak.problem(free):
                raise UserError(problem)
        kept = self._keep(path)
        spec = JobSpec(
            id="",
            name=safe_adapter_name(name or Path(path).stem),
            base_model=self.runtime.model.path or self.runtime.model.base,
            base_name=self.runtime.model.base,
            dataset=str(kept),
            adapters_dir=str(self.registry.root),
            holdout=holdout,
            preset=preset,
            lora=lora,
            fit=fit,
            backend=backend,
            device=self.runtime.settings.device or None,
            owner="" if not self.roles.shared else caller.workspace or "",
            general_set=self.runtime.settings.general_data,
            source=dataset_source(path),
        )
        return self.jobs.submit(spec)

    def memory_estimate(
        self,
        preset: str,
        lora: dict[str, Any] | None = None,
        fit: dict[str, Any] | None = None,
        backend: str = AUTO,
        longest: int | None = None,
    ) -> tuple[MemoryEstimate, float] | None:
        """A job's peak memory on the device it will train on (`adapters.training.memory`), with the memory free
        there now (GiB); `longest`: the dataset's longest example in tokens (else the maximum sequence length)."""
        self.preset(preset)  # an unknown preset is a user's mistake, said as one
        lora_settings, fit_settings = preset_settings(
            preset, _known(lora or {}, LoraSettings), _known(fit or {}, FitSettings)
        )
        chosen = self.backend(backend).name
        config = self.runtime.engine.config
        if config is None:  # a served generator without the base model's config here
            return None
        try:
            return job_estimate(
                config,
                lora_settings,
                fit_settings,
                chosen,
                self.runtime.settings.device or None,
                longest,
            )
        except (AttributeError, TypeError, ValueError) as error:  # a model whose config names its sizes otherwise
            logger.info("no memory estimate for %s: %s", self.runtime.model.base, error)
            return None

    def memory_note(
        self, preset: str, lora: dict[str, Any] | None = None, fit: dict[str, Any] | None = None, backend: str = AUTO
    ) -> str:
        """One line for the page before launch: the estimate for batches as long as the maximum sequence length,
        the memory free now, and whether it fits (a launch checks again with the dataset's longest example)."""
        try:
            found = self.memory_estimate(preset, lora, fit, backend)
        except UserError as error:
            return f"No memory estimate: {error}"
        if found is None and self.runtime.engine.config is None:
            return f"No memory estimate: {self._no_local_model('config')}."
        if found is None:
            return "No memory estimate for this model: its config does not name its sizes as Llama's does."
        peak, free = found
        if problem := peak.problem(free):
            return f"**Will not fit.** {problem}"
        return (
            f"Memory: {peak.describe()}, for batches as long as the maximum sequence length; "
            f"{free:.1f} GiB {peak.device} memory free now, so it fits."
        )

    def train_and_wait(
        self, path: Path, name: str, preset: str = "quick demo", fit: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A job as the page launches it, waited for: the adapter's name, the job's wall time (queue, process
        start, model load, training, saving) and its training time alone."""
        started = time.perf_counter()
        view = self.jobs.wait(self.launch(path, name, preset, fit=fit).id, timeout_s=6 * 3600)
        if view.state != "completed" or not view.adapter:
            raise UserError(f"the job ended {view.state}: {view.error or 'no adapter was saved'}")
        info = self.registry.get(view.adapter)
        return {
            "adapter": view.adapter,
            "preset": preset,
            "job_s": round(time.perf_counter() - started, 1),
            "training_s": info.duration_s if info else None,
            "steps": info.steps if info else view.step,
        }

    def _keep(self, path: Path) -> Path:
        """A copy of the uploaded data next to the jobs, as uploads are temporary and the job runs later."""
        folder = self.jobs.root / "datasets"

        target = folder / file_sha256(path)[:16] / Path(path).name  # the name stays what the user knows
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return target

    # ---- adapters ----------------------------------------------------------------------------------------------

    def adapters(self, caller: Caller = Caller(owner=True)) -> list[AdapterInfo]:
        """The adapter the app started with (the demo adapter may live outside the registry), then the others
        trained on the loaded base model that `caller` may use, newest first."""
        registered = [a for a in self.trained_here() if self.roles.may_use(a, caller)]
        startup = startup_adapter(self.runtime, self.registry)
        if startup is None:
            return registered
        return [startup] + [a for a in registered if a.name != startup.name]

    def trained_here(self) -> list[AdapterInfo]:
        """Registered adapters trained on the loaded base model, newest first."""
        return self.registry.trained_on(self.runtime.model.base, self.runtime.model.path)

    def fits(self, info: AdapterInfo) -> bool:
        return fits_base(info, self.runtime.model.base, self.runtime.model.path)

    def adapter_choices(self, caller: Caller = Caller(owner=True)) -> list[str]:
        """What the Compare tab offers: the adapter loaded at start, then the registered ones `caller` may use."""
        names = [self.runtime.model.adapter] if self.runtime.model.adapter else []
        names += [name for name in self._server_adapters() if name not in names]
        return names + [a.name for a in self.adapters(caller) if a.name not in names]

    def _server_adapters(self) -> tuple[str, ...]:
        """The adapters a served generator's server was started with: the owner's, so everyone's."""
        engine = self.runtime.engine
        return engine.listed if isinstance(engine, ServedEngine) else ()

    def ensure_loaded(self, name: str, workspace: str | None = None) -> None:
        """Attach a registered adapter to the engine if it is not yet (a reload of the base model is not needed).
        On a shared server a visitor's adapter answers only in that visitor's browser."""
        if name == self.runtime.model.adapter or name in self._server_adapters():
            return
        info = self.registry.get(name)
        if info is None or not self.fits(info) or not self.roles.may_use(info, self.roles.caller(workspace)):
            raise UserError(f"No adapter named {name!r} was trained on {self.runtime.model.base}.")
        if name not in self.runtime.engine.adapters:
            self.runtime.engine.load_adapter(name, info.path)

    def _managed(self, name: str | None, caller: Caller, action: str) -> AdapterInfo:
        """The registered adapter `caller` may delete or export, or a UserError saying why not."""
        info = self.registry.get(_chosen(name))
        if info is None or not self.roles.may_use(info, caller):
            raise UserError(f"No adapter named {name!r} is registered; there is nothing to {action}.")
        if not self.roles.may_manage(info, caller):
            raise UserError(f"Only the server's owner can {action} {name}: it was not trained in this browser.")
        return info

    def delete(self, name: str | None, caller: Caller = Caller(owner=True)) -> None:
        if _chosen(name) == self.runtime.model.adapter:
            raise UserError(f"{name} is the adapter the app started with; it cannot be deleted from the page.")
        self._managed(name, caller, "delete")
        self.runtime.engine.unload_adapter(name)
        self.registry.delete(name)

    def publish(self, name: str | None, caller: Caller) -> None:
        """The owner makes a visitor's adapter everyone's (it is offered in every browser's Compare tab)."""
        if not caller.owner:
            raise UserError("Only the server's owner can publish adapters.")
        self._managed(name, caller, "publish")
        self.registry.set_owner(name, "")

    def job_table(self, caller: Caller = Caller(owner=True)) -> list[list[Any]]:
        """Every job's row for the page's table, newest first, as `caller` may see it (see `shown_jobs`)."""
        return self.shown_jobs(caller).rows

    def shown_jobs(self, caller: Caller) -> JobsShown:
        """The job card and table `caller` sees. The owner sees every job; a visitor of a shared demo its own in
        full (its card: its running job, else its newest) and of the others only their state and step, so it sees
        the queue but never their names, data, losses or messages."""
        views = self.jobs.jobs()  # newest first
        if caller.owner:
            return JobsShown(self.jobs.current(), job_rows(views))
        mine = {view.id for view in views if self.jobs.owner_of(view.id) == caller.workspace}
        running = self.jobs.current()
        own = [view for view in views if view.id in mine]
        current = running if running is not None and running.id in mine else next(iter(own), None)
        return JobsShown(current, job_rows(views, mine), mine_only=True)

    def status(self, job_id: str, caller: Caller = Caller(owner=True)) -> JobView:
        """One job's view: the owner any, a visitor only one launched from its browser (another's is answered as
        an id that does not exist, as the table shows it no id either)."""
        try:
            view = self.jobs.view(job_id)
        except KeyError:
            view = None
        if view is None or not (caller.owner or self.jobs.owner_of(job_id) == caller.workspace):
            raise UserError(f"No fine-tune job {job_id!r}.")
        return view

    def cancel(self, caller: Caller = Caller(owner=True), job_id: str | None = None) -> str:
        """Cancel `job_id`, or else the caller's running or next job: the owner any, a visitor only one launched
        from its browser."""
        if job_id:
            try:
                view = self.jobs.view(job_id)
            except KeyError:
                raise UserError(f"No fine-tune job {job_id!r}.") from None
        else:
            view = self._next_to_stop(caller)
        if not caller.owner and self.jobs.owner_of(view.id) != caller.workspace:
            raise UserError("Only the server's owner can cancel a fine-tune launched from another browser.")
        return self.jobs.cancel(view.id)

    def _next_to_stop(self, caller: Caller) -> JobView:
        """The caller's running job, else its next queued one (a visitor's own only: another's job is not its to
        stop, and a Cancel must not fail just because someone else's job runs)."""
        running = self.jobs.current()
        mine = [
            view
            for view in self.jobs.jobs()  # newest first
            if not view.final and (caller.owner or self.jobs.owner_of(view.id) == caller.workspace)
        ]
        if not mine:
            whose = "" if caller.owner else " launched from this browser"
            raise UserError(f"No fine-tune{whose} is running or waiting.")
        if running is not None and any(view.id == running.id for view in mine):
            return running
        return mine[-1]  # the oldest waiting: the next to run

    def resume(self, caller: Caller = Caller(owner=True)) -> JobView:
        """Go on with the job on the caller's card (the newest, cancelled or failed) from its last checkpoint, with
        the same data and settings: the owner any, a visitor only one launched from its browser."""
        view = self.shown_jobs(caller).current
        if view is None:
            raise UserError("No fine-tune has run yet." if caller.owner else "No fine-tune from this browser yet.")
        self.limits.check_jobs(self._active_jobs())
        if not caller.owner and self.jobs.owner_of(view.id) != caller.workspace:
            raise UserError("Only the server's owner can resume a fine-tune launched from another browser.")
        try:
            return self.jobs.resume(view.id)
        except ValueError as error:
            raise UserError(str(error)) from None

    @cached_property
    def limits(self) -> DemoLimits:  # settings are frozen: read once
        return DemoLimits.of(self.runtime.settings)

    def _active_jobs(self) -> int:
        return sum(not view.final for view in self.jobs.jobs())

    def snapshot(self, caller: Caller, since: SnapshotVersion | None = None) -> FinetuneSnapshot | None:
        """What the Fine-tune tab shows `caller`, only the parts changed since `since`; None when nothing changed.
        Every open page asks once a second, so telling costs no reading: two counters and one stat."""
        version = SnapshotVersion(self.jobs.version, self.registry.stamp(), caller)
        if version == since:
            return None
        jobs = adapters = None
        if since is None or version.jobs != since.jobs:
            jobs = self.shown_jobs(caller)
        if since is None or (version.adapters, version.caller) != (since.adapters, since.caller):
            adapters = AdaptersShown(
                adapter_rows(self, caller), registered_names(self, caller), self.adapter_choices(caller)
            )
        return FinetuneSnapshot(version, jobs, adapters)

    def export_merged(self, name: str | None, caller: Caller = Caller(owner=True)) -> Path:
        """The base model with the adapter merged in, saved as a plain transformers folder."""
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        info = self._managed(name, caller, "export")
        target = self.runtime.settings.home / "exports" / f"{name}-merged"
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        base = AutoModelForCausalLM.from_pretrained(self.runtime.model.path or self.runtime.model.base)
        merged = PeftModel.from_pretrained(base, info.path).merge_and_unload()
        merged.save_pretrained(staging)
        AutoTokenizer.from_pretrained(info.path).save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target

    def push_to_hub(
        self, name: str | None, repo_id: str, typed_token: str | None, caller: Caller = Caller(owner=True)
    ) -> str:
        """Upload the adapter folder with the token typed, or the server's HF_TOKEN for its owner only; the token
        is used for this call only and never stored or shown."""
        from huggingface_hub import HfApi

        info = self.registry.get(_chosen(name))
        if info is None or not self.roles.may_use(info, caller):
            raise UserError(f"No adapter named {name!r}.")
        token = self.roles.hub_token(typed_token, caller)
        if not repo_id.strip() or "/" not in repo_id:
            raise UserError("Give the repository as owner/name, e.g. my-user/pinecrest-voice.")
        api = HfApi(token=token or None)
        try:
            api.create_repo(repo_id.strip(), exist_ok=True)
            commit = api.upload_folder(folder_path=info.path, repo_id=repo_id.strip())
        except Exception as error:  # the hub's message, without anything that could echo the token
            message = str(error).replace(token, "***") if token else str(error)
            raise UserError(f"Upload to {repo_id} failed: {type(error).__name__}: {message}") from None
        return str(getattr(commit, "commit_url", "") or f"https://huggingface.co/{repo_id}")

    # ---- keeping the engine in step with the registry -------------------------------------------------------

    def _adopt(self, view: JobView) -> None:
        """A finished job's adapter is attached to the engine right away (a cancelled one too: it is usable)."""
        if view.adapter:
            info = self.registry.get(view.adapter)
            if info is not None and self.fits(info):
                try:
                    self.runtime.engine.load_adapter(info.name, info.path)
                except UserError as error:  # a server that cannot load it: asking for it in Compare says why again
                    logger.warning("adapter %s is saved but not loaded: %s", info.name, error)


def dataset_source(path: Path) -> str:
    """Where a dataset the page made came from, in words ("" for any other file)."""
    try:
        return Path(path).with_name(Path(path).name + SOURCE_SUFFIX).read_text().strip()
    except OSError:
        return ""


def _chosen(name: str | None) -> str:
    """The adapter a page action names; none chosen is the user's to fix."""
    if not name:
        raise UserError("Choose an adapter first.")
    return name


def _where(line: int | None, item: int | None) -> str:
    if line is None:
        return ""
    return f"{line} (item {item})" if item is not None else str(line)


def _known(values: dict[str, Any], kind: type) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"unknown {kind.__name__} settings: {', '.join(unknown)}")
    return {k: v for k, v in values.items() if v is not None}


def _check_settings(lora: dict[str, Any], fit: dict[str, Any], holdout: float) -> None:
    problems = []
    if lora.get("rank", 1) < 1 or lora.get("alpha", 1) <= 0:
        problems.append("LoRA rank must be at least 1 and alpha positive")
    if not 0 <= lora.get("dropout", 0.0) < 1:
        problems.append("dropout must be in [0, 1)")
    if "target_modules" in lora and not lora["target_modules"]:
        problems.append("choose at least one target module")
    if fit.get("learning_rate", 1e-4) <= 0:
        problems.append("the learning rate must be positive")
    if fit.get("batch_size", 1) < 1 or fit.get("max_seq_length", 16) < 16:
        problems.append("batch size must be at least 1 and max sequence length at least 16")
    if fit.get("max_steps") is not None and fit["max_steps"] < 1:
        problems.append("max steps must be at least 1")
    if fit.get("epochs", 1) <= 0:
        problems.append("epochs must be positive")
    if not 0 <= holdout <= 0.5:
        problems.append("the hold-out share must be between 0 and 50 %")
    if problems:
        raise UserError("Check the settings: " + "; ".join(problems) + ".")


# ---- what the Fine-tune tab's tables show -------------------------------------------------------------------------

STATS_HEADERS = ["Measure", "Value"]
# Three different losses, each named: the last step's training loss (noisy), the training loss smoothed over the
# last steps (what a finished adapter records), and the loss on the held-out examples (never trained on).
JOB_HEADERS = ["Job", "Adapter", "State", "Step", "Train loss (last step)", "Held-out loss", "Message"]
ADAPTER_HEADERS = [
    "Adapter",
    "Status",
    "Dataset",
    "Steps",
    "Train loss (smoothed)",
    "Held-out loss",
    "Backend",
    "Minutes",
    "Trained (UTC)",
    "Forgetting check (general text perplexity; general questions right, base → adapter)",
]
STARTUP = "startup adapter (protected)"


def startup_adapter(runtime: Runtime, registry: AdapterRegistry) -> AdapterInfo | None:
    """The adapter the app started with: its registry entry, or what its folder says (the demo adapter's folder
    has no registry metadata, but the demo model's build record has its training figures)."""
    name = runtime.model.adapter
    folder = runtime.engine.adapters.get(name) if name else None
    if name is None or folder is None:
        return None
    info = registry.get(name) or AdapterRegistry(Path(folder).parent).get(Path(folder).name)
    info = info or AdapterInfo(name=name, base_model=runtime.model.base, path=str(folder))
    info.name, info.base_model = name, runtime.model.base
    if not info.steps:
        _fill_from_demo_build(info, Path(folder) / "build_info.json", runtime.settings.finetune_data)
    return info


def _fill_from_demo_build(info: AdapterInfo, record: Path, data: Path) -> None:
    try:
        training = json.loads(record.read_text()).get("adapter_training") or {}
    except (OSError, ValueError):
        return
    info.steps = int(training.get("steps") or 0)
    info.train_loss = training.get("loss")  # smoothed over the last steps, as a job's train_loss
    info.duration_s = float(training.get("seconds") or 0.0)
    info.dataset = {"file": Path(data).name, "examples": training.get("examples")}
    info.backend = info.backend or "transformers"


def registered_names(service: FinetuneService, caller: Caller = Caller(owner=True)) -> list[str]:
    """Adapters the page can delete, export or push: those in the registry `caller` may use (the startup one only
    if it is there, and Delete refuses it)."""
    return [a.name for a in service.trained_here() if service.roles.may_use(a, caller)]


def _figure(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"  # NaN: no step ran


def adapter_rows(service: FinetuneService, caller: Caller = Caller(owner=True)) -> list[list[Any]]:
    startup = service.runtime.model.adapter
    return [
        [
            a.name,
            _status_cell(a, startup, caller),
            " ".join(filter(None, [a.dataset.get("file"), _in_brackets(a.dataset.get("source"))])) or "–",
            a.steps or "–",
            _figure(a.train_loss),
            _figure(a.eval_loss),
            a.backend or "–",
            round(a.duration_s / 60, 1) if a.duration_s else "–",
            a.created.replace("T", " ")[:16] or "–",
            forgetting_cell(a.forgetting),
        ]
        for a in service.adapters(caller)
    ]


def _in_brackets(text: str | None) -> str:
    return f"({text})" if text else ""


def forgetting_cell(found: dict[str, Any]) -> str:
    """'+38 % (12.1 → 16.7); 11 → 9 of 24'; '–' when no check ran."""
    if not found:
        return "–"
    if found.get("error"):
        return f"not measured: {found['error']}"
    return (
        f"{found['perplexity_change']:+.0%} ({found['base_perplexity']:.1f} → {found['adapter_perplexity']:.1f}); "
        f"{found['base_correct']} → {found['adapter_correct']} of {found['questions']}"
    )


def _status_cell(adapter: AdapterInfo, startup: str | None, caller: Caller) -> str:
    if adapter.name == startup:
        return f"{adapter.status} · {STARTUP}"
    if adapter.owner:  # a shared server's visitor trained it and the owner has not published it
        whose = "yours (this browser), not published" if adapter.owner == caller.workspace else "a visitor's"
        return f"{adapter.status} · {whose}"
    return adapter.status


@dataclass(frozen=True)
class SnapshotVersion:
    jobs: int  # the job manager's version: events, states, the queue
    adapters: tuple[int, int]  # the registry's stamp
    caller: Caller  # whose rows: unlocking the owner's actions changes them


@dataclass(frozen=True)
class JobsShown:
    current: JobView | None  # the running job, else the newest (a visitor's: of its own)
    rows: list[list[Any]]  # job_rows of every job
    mine_only: bool = False  # a visitor's view: `current` is None when it launched nothing, whoever else did


@dataclass(frozen=True)
class AdaptersShown:
    rows: list[list[Any]]  # adapter_rows
    managed: list[str]  # registered_names: what Delete, export and push offer
    choices: list[str]  # adapter_choices: what the Compare tab offers


@dataclass(frozen=True)
class FinetuneSnapshot:
    version: SnapshotVersion
    jobs: JobsShown | None  # None: unchanged since the version asked about
    adapters: AdaptersShown | None  # None: unchanged, so the dropdowns are left as the user has them


OTHERS_JOB = "another visitor's"


def job_rows(views: list[JobView], mine: set[str] | None = None) -> list[list[Any]]:
    """A row per job; with `mine` (a visitor's job ids), the others' rows keep only their state and step."""

    def step(v: JobView) -> str:
        return f"{v.step}/{v.total_steps}" if v.total_steps else "–"

    return [
        [v.id, v.adapter or v.name, v.state, step(v), _figure(v.loss), _figure(v.eval_loss), v.error]
        if mine is None or v.id in mine
        else ["–", OTHERS_JOB, v.state, step(v), "–", "–", ""]
        for v in views
    ]


def stats_rows(stats: dict[str, Any]) -> list[list[str]]:
    """The dataset's counts as (measure, value) rows with units; what was not measured is left out."""
    rows = [["Format", stats.get("format") or "not recognised"], ["Problems", str(stats.get("problems", 0))]]
    if "count" not in stats:
        return rows
    rows.append(["Examples", str(stats["count"])])
    if "avg_tokens" in stats:
        rows += [
            ["Length per example, mean (chat template included)", f"{stats['avg_tokens']:.1f} tokens"],
            ["Length per example, longest", f"{stats['max_tokens']} tokens"],
        ]
    else:
        rows.append(["Length per example", stats.get("tokens_note") or "not measured"])
    if stats.get("max_seq_length") is not None and stats.get("over_max_length") is not None:
        over = stats["over_max_length"]
        rows.append([f"Longer than {stats['max_seq_length']} tokens (the max sequence length)", _over(over)])
    rows.append(["Duplicates (same question and answer)", _duplicates(stats.get("duplicate_lines") or [])])
    for sample in stats.get("samples") or []:
        rows.append([f"Example, line {sample['line']}", f"Q: {sample['question']} → A: {sample['answer']}"])
    return rows


def _over(count: int) -> str:
    return "none" if not count else f"{count} example{'s' if count > 1 else ''}: training cuts the prompt's start"


def _duplicates(pairs: list[list[int]], shown: int = 5) -> str:
    if not pairs:
        return "none"
    lines = ", ".join(f"line {line} repeats line {first}" for line, first in pairs[:shown])
    more = f", and {len(pairs) - shown} more" if len(pairs) > shown else ""
    return f"{len(pairs)}: {lines}{more}"
