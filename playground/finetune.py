"""The Fine-tune tab's service: validate a dataset, launch and watch jobs, and manage the trained adapters.

Jobs train on the base model the app has loaded, so a finished adapter is attached to the running engine at
once and the Compare tab can use it without reloading anything.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.backends import PRESETS, BackendChoice, choose_backend
from adapters.datasets import LoadedDataset, dataset_stats, load_dataset, write_chat_jsonl
from adapters.job import JobSpec, file_sha256
from adapters.registry import AdapterInfo, AdapterRegistry, safe_adapter_name
from adapters.train import FitSettings, LoraSettings
from pipelines.indexing import chunks_of
from playground.jobs import JobManager, JobView
from playground.qa_builder import BuildReport, build_pairs, pairs_from_rows
from playground.runtime import Runtime

ISSUE_HEADERS = ["Line", "Field", "Problem"]


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
        self.registry = AdapterRegistry(runtime.settings.home / "adapters")
        self.jobs = JobManager(runtime.settings.home, on_finished=self._adopt)

    # ---- backend and settings ----------------------------------------------------------------------------------

    def backend(self, prefer: str = "auto") -> BackendChoice:
        """The backend a job would pick, without importing unsloth here (the job's own process does that)."""
        return choose_backend(prefer, probe=False)

    @staticmethod
    def presets() -> list[str]:
        return list(PRESETS)

    @staticmethod
    def preset(name: str) -> tuple[LoraSettings, FitSettings]:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
        return PRESETS[name]

    # ---- datasets ----------------------------------------------------------------------------------------------

    def validate(self, path: Path, max_seq_length: int | None = None) -> Validation:
        loaded = load_dataset(path)
        stats: dict[str, Any] = {"format": loaded.format, "problems": len(loaded.issues)}
        if loaded.examples:
            tokenizer = self.runtime.engine.tokenizer
            stats.update(dataset_stats(loaded.examples, tokenizer, max_seq_length).to_json())
        return Validation(loaded, stats)

    def build_from_documents(self, origin: str, workspace_id: str | None, limit: int = 200) -> BuildReport:
        """Question–answer pairs from the session's uploads ("mine") or the shared knowledge base ("shared")."""
        if origin == "mine":
            store = self.runtime.workspaces.store(workspace_id) if workspace_id else None
            if store is None or not store.count_documents():
                raise ValueError("You have not uploaded documents yet (Documents tab).")
        else:
            store = self.runtime.store
        writer = None if self.runtime.model.is_demo else self.runtime.engine
        return build_pairs(chunks_of(store), writer, limit)

    def save_pairs(self, rows: list[list[Any]]) -> Path:
        """The reviewed pairs as a chat JSONL dataset, ready to validate and launch."""
        pairs = pairs_from_rows(rows)
        if not pairs:
            raise ValueError("There are no pairs with both a question and an answer to train on.")
        folder = self.jobs.root / "datasets" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        return write_chat_jsonl([p.to_example() for p in pairs], folder / "from-documents.jsonl")

    # ---- jobs --------------------------------------------------------------------------------------------------

    def launch(
        self,
        path: Path,
        name: str,
        preset: str,
        lora: dict[str, Any] | None = None,
        fit: dict[str, Any] | None = None,
        holdout: float = 0.1,
        backend: str = "auto",
    ) -> JobView:
        """Checks everything a job would trip over before queueing it: data, settings, names."""
        self.preset(preset)  # an unknown preset fails here, before anything is queued
        lora = _known(lora or {}, LoraSettings)
        fit = _known(fit or {}, FitSettings)
        _check_settings(lora, fit, holdout)
        validation = self.validate(path)
        if not validation.ok:
            first = "; ".join(str(issue) for issue in validation.dataset.issues[:3])
            raise ValueError(f"Fix the dataset first ({len(validation.dataset.issues)} problems): {first}")
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
        )
        return self.jobs.submit(spec)

    def _keep(self, path: Path) -> Path:
        """A copy of the uploaded data next to the jobs, as uploads are temporary and the job runs later."""
        folder = self.jobs.root / "datasets"

        target = folder / file_sha256(path)[:16] / Path(path).name  # the name stays what the user knows
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        return target

    # ---- adapters ----------------------------------------------------------------------------------------------

    def adapters(self) -> list[AdapterInfo]:
        """Adapters trained on the loaded base model, newest first."""
        return self.registry.list(self.runtime.model.base)

    def adapter_choices(self) -> list[str]:
        """What the Compare tab offers: the adapter loaded at start, then the registered ones."""
        names = [self.runtime.model.adapter] if self.runtime.model.adapter else []
        return names + [a.name for a in self.adapters() if a.name not in names]

    def ensure_loaded(self, name: str) -> None:
        """Attach a registered adapter to the engine if it is not yet (a reload of the base model is not needed)."""
        if name in self.runtime.engine.adapters:
            return
        info = self.registry.get(name)
        if info is None or info.base_model != self.runtime.model.base:
            raise ValueError(f"No adapter named {name!r} was trained on {self.runtime.model.base}.")
        self.runtime.engine.load_adapter(name, info.path)

    def delete(self, name: str) -> None:
        if name == self.runtime.model.adapter:
            raise ValueError(f"{name} is the adapter the app started with; it cannot be deleted from the page.")
        self.runtime.engine.unload_adapter(name)
        self.registry.delete(name)

    def export_merged(self, name: str) -> Path:
        """The base model with the adapter merged in, saved as a plain transformers folder."""
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        info = self.registry.get(name)
        if info is None:
            raise ValueError(f"No adapter named {name!r}.")
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

    def push_to_hub(self, name: str, repo_id: str, token: str | None) -> str:
        """Upload the adapter folder; the token is used for this call only and never stored or shown."""
        from huggingface_hub import HfApi

        info = self.registry.get(name)
        if info is None:
            raise ValueError(f"No adapter named {name!r}.")
        if not repo_id.strip() or "/" not in repo_id:
            raise ValueError("Give the repository as owner/name, e.g. my-user/pinecrest-voice.")
        api = HfApi(token=token or None)
        try:
            api.create_repo(repo_id.strip(), exist_ok=True)
            commit = api.upload_folder(folder_path=info.path, repo_id=repo_id.strip())
        except Exception as error:  # the hub's message, without anything that could echo the token
            message = str(error).replace(token, "***") if token else str(error)
            raise ValueError(f"Upload to {repo_id} failed: {type(error).__name__}: {message}") from None
        return str(getattr(commit, "commit_url", "") or f"https://huggingface.co/{repo_id}")

    # ---- keeping the engine in step with the registry -------------------------------------------------------

    def _adopt(self, view: JobView) -> None:
        """A finished job's adapter is attached to the engine right away (a cancelled one too: it is usable)."""
        if view.adapter:
            info = self.registry.get(view.adapter)
            if info is not None and info.base_model == self.runtime.model.base:
                self.runtime.engine.load_adapter(info.name, info.path)


def _where(line: int | None, item: int | None) -> str:
    if line is None:
        return ""
    return f"{line} (item {item})" if item is not None else str(line)


def _known(values: dict[str, Any], kind: type) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {kind.__name__} settings: {', '.join(unknown)}")
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
        raise ValueError("Check the settings: " + "; ".join(problems) + ".")
