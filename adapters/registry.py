"""The adapter registry: one folder per trained LoRA adapter under PLAYGROUND_HOME/adapters, with its metadata.

Each folder is a standard PEFT adapter directory (what `PeftModel.from_pretrained` loads) plus `playground.json`:
base model, dataset and its hash, settings, backend, duration, final losses, date, and whether training finished.
A new adapter is trained into a staging folder and renamed into place, so a finished adapter is never overwritten
and a failed save leaves no half-written entry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from adapters.files import atomic_write_json

METADATA = "playground.json"
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_STAGING = re.compile(r"\.staging-.*-(\d+)")  # `.staging-<name>-<pid of the process saving>`


@dataclass
class AdapterInfo:
    name: str
    base_model: str  # the base model's name as the page shows it (hub id, folder, or the demo model's name)
    status: str = "complete"  # "complete" or "incomplete" (cancelled: usable, but stopped early)
    dataset: dict[str, Any] = field(default_factory=dict)  # file, sha256, examples, holdout
    settings: dict[str, Any] = field(default_factory=dict)  # lora and fit settings
    backend: str = ""
    duration_s: float = 0.0
    steps: int = 0
    train_loss: float | None = None
    eval_loss: float | None = None
    created: str = ""  # ISO date and time, UTC
    job: str = ""  # the job that trained it
    owner: str = ""  # on a shared server, the workspace (browser) that trained it until published; "" : everyone's
    forgetting: dict[str, Any] = field(default_factory=dict)  # the forgetting check after training (ForgettingReport)
    path: str = ""  # filled in when read

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def safe_adapter_name(name: str) -> str:
    """Letters, digits, dot, dash and underscore only; never empty, never a path."""
    cleaned = _NAME.sub("-", name.strip()).strip(".-")[:64]
    return cleaned or "adapter"


def fits_base(info: AdapterInfo, base_name: str, base_path: str = "") -> bool:
    """Whether an adapter was trained on the loaded base model: the one place that decides. Registered adapters record
    the base's display name; a bare PEFT folder copied in by hand only knows the path it was trained from."""
    return info.base_model in {base_name, base_path} - {""}


class AdapterRegistry:
    _writes: ClassVar[int] = 0  # changes made by this process, through any instance

    def __init__(self, root: Path) -> None:
        self.root = root

    def stamp(self) -> tuple[int, int]:
        """Changes whenever the listing may have: a change made by this process, or the folder's time (an adapter
        another process added, renamed into place, or removed). One stat, nothing read."""
        try:
            changed = self.root.stat().st_mtime_ns
        except OSError:
            changed = 0
        return AdapterRegistry._writes, changed

    def list(self) -> list[AdapterInfo]:
        """Every registered adapter, newest first (`trained_on` keeps those that fit the loaded base)."""
        found = [info for info in map(self._read, self._folders()) if info is not None]
        return sorted(found, key=lambda info: info.created, reverse=True)

    def trained_on(self, base_name: str, base_path: str = "") -> list[AdapterInfo]:
        """The adapters that fit the loaded base model, newest first."""
        return [info for info in self.list() if fits_base(info, base_name, base_path)]

    def get(self, name: str) -> AdapterInfo | None:
        folder = self.root / safe_adapter_name(name)
        return self._read(folder) if folder.name == name else None

    def unique_name(self, wanted: str) -> str:
        """`wanted` made safe, with -2, -3, … appended while that name is taken."""
        base = safe_adapter_name(wanted)
        name, n = base, 1
        while (self.root / name).exists():
            n += 1
            name = f"{base}-{n}"
        return name

    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A fresh folder to save an adapter into; removed if the block fails. `commit` moves it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.staging_folder(name, os.getpid())
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def staging_folder(self, name: str, pid: int) -> Path:
        """Where the process `pid` stages the adapter it saves as `name`."""
        return self.root / f".staging-{safe_adapter_name(name)}-{pid}"

    def remove_staging(self, name: str, pid: int) -> bool:
        """Removes what a job process that is gone (killed mid-save) left staged; True when there was something."""
        folder = self.staging_folder(name, pid)
        if not folder.is_dir():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True

    def remove_stale_staging(self, alive: Callable[[int], bool]) -> list[str]:
        """Removes every staging folder whose process is no longer `alive`; returns their names."""
        if not self.root.is_dir():
            return []
        removed = []
        for folder in self.root.iterdir():
            found = _STAGING.fullmatch(folder.name)
            if found and folder.is_dir() and not alive(int(found.group(1))):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
        return removed

    def commit(self, staged: Path, info: AdapterInfo) -> AdapterInfo:
        """Write the metadata into the staged folder and rename it to a free name (the wanted one if free)."""
        info.name = self.unique_name(info.name)
        (staged / METADATA).write_text(json.dumps({**info.to_json(), "path": ""}, indent=2))
        target = self.root / info.name
        staged.rename(target)  # atomic on one file system; the name was free a moment ago
        AdapterRegistry._writes += 1
        info.path = str(target)
        return info

    def set_owner(self, name: str, owner: str) -> AdapterInfo:
        """Rewrite the adapter's metadata with another owner ("" publishes it to everyone); atomic."""
        info = self.get(name)
        if info is None:
            raise KeyError(f"no adapter named {name!r}")
        info.owner = owner
        atomic_write_json(Path(info.path) / METADATA, {**info.to_json(), "path": ""}, indent=2)
        AdapterRegistry._writes += 1
        return info

    def delete(self, name: str) -> None:
        info = self.get(name)
        if info is None:
            raise KeyError(f"no adapter named {name!r}")
        shutil.rmtree(info.path)
        AdapterRegistry._writes += 1

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    @staticmethod
    def _read(folder: Path) -> AdapterInfo | None:
        """The folder's metadata; a bare PEFT folder (copied in by hand) gets what its config says."""
        if not (folder / "adapter_config.json").is_file():
            return None
        try:
            data = json.loads((folder / METADATA).read_text())
            known = {k: v for k, v in data.items() if k in AdapterInfo.__dataclass_fields__}
            info = AdapterInfo(**known)
        except (OSError, ValueError, TypeError):
            config = json.loads((folder / "adapter_config.json").read_text())
            base = str(config.get("base_model_name_or_path") or "")
            info = AdapterInfo(name=folder.name, base_model=base, status="complete")
        info.name, info.path = folder.name, str(folder)
        return info
