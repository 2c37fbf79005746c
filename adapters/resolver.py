"""One resolver for every generator model load: path or hub id → local cache → hub → demo model."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Source = Literal["hub", "local", "demo"]
# What a causal LM needs from a hub repository; skips other formats (gguf, onnx, original weights).
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    name: str  # what the page shows: the hub id, the folder, or the demo model's name
    source: Source
    note: str = ""  # why this model answers, when it is not the one asked for


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _from_hub(repo_id: str, *, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=MODEL_FILES, local_files_only=local_only))


def resolve_model(
    spec: str | None, demo: Callable[[], tuple[Path, str]], log: Callable[[str], None] = print
) -> ResolvedModel:
    """`spec` is a local folder, a hub id, or empty/"demo" for the built-in model.

    `demo()` builds (or loads the cached) demo model and returns its folder and name.
    """
    if spec and spec != "demo":
        folder = Path(spec).expanduser()
        if folder.is_dir():
            return ResolvedModel(folder.resolve(), str(spec), "local")
        try:
            return ResolvedModel(_from_hub(spec, local_only=True), spec, "hub", "from the local cache")
        except Exception:  # not cached; the hub is the next place to look
            pass
        if hub_offline():
            reason = f"{spec} is not in the local cache and the hub is off (HF_HUB_OFFLINE=1)"
        else:
            try:
                log(f"downloading {spec} from the Hugging Face Hub")
                return ResolvedModel(_from_hub(spec, local_only=False), spec, "hub")
            except Exception as error:
                reason = f"{spec} could not be downloaded ({type(error).__name__})"
        log(f"{reason}; using the built-in demo model")
    else:
        reason = "the built-in demo model was asked for"
    path, name = demo()
    return ResolvedModel(path, name, "demo", reason)


def adapter_base(path: Path) -> str:
    """The base model an adapter directory was trained on, as its adapter_config.json says."""
    config = json.loads((path / "adapter_config.json").read_text())
    return str(config.get("base_model_name_or_path") or "")
