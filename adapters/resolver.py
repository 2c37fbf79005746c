"""One resolver for every generator model load: path or hub id → local cache → hub → demo model."""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from adapters.errors import UserError

logger = logging.getLogger(__name__)

Source = Literal["hub", "local", "demo"]
# What a causal LM needs from a hub repository; skips other formats (gguf, onnx, original weights).
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]
PROBE_TIMEOUT_S = 3.0  # DNS included: an offline start waits at most this long for the hub, once


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    name: str  # what the page shows: the hub id, the folder, or the demo model's name
    source: Source
    note: str = ""  # why this model answers, when it is not the one asked for


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable() -> bool:
    """Whether loaders may reach for the hub: HF_HUB_OFFLINE is not set and one probe of the hub answered.

    Every loader consults this instead of trying the hub itself, so an offline start costs one bounded check and
    says so in one line. Only this answer is cached: HF_HUB_OFFLINE is never set for the process, so uploads to
    the hub and other processes keep their own choice.
    """
    reachable = not hub_offline() and _probe_hub()
    if not reachable:
        _say_offline()
    return reachable


def hub_unavailable_reason() -> str:
    """Why the hub is not used, in words a log line or the page can show."""
    return "the hub is off (HF_HUB_OFFLINE=1)" if hub_offline() else "the hub is unreachable"


@functools.cache
def _probe_hub() -> bool:
    """One HEAD request to the hub endpoint, in a thread so that a slow DNS lookup cannot hold the start."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    answered: list[bool] = []

    def probe() -> None:
        try:
            answered.append(get_session().head(constants.ENDPOINT, timeout=PROBE_TIMEOUT_S).status_code < 500)
        except Exception:  # any failure to connect means offline
            answered.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return bool(answered and answered[0])


@functools.cache
def _say_offline() -> None:
    if hub_offline():
        logger.warning("offline: HF_HUB_OFFLINE is set; using local files only")
    else:
        logger.warning("offline: the Hugging Face Hub is not reachable; using local files only")


def _from_hub(repo_id: str, *, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=MODEL_FILES, local_files_only=local_only))


def resolve_model(
    spec: str | None, demo: Callable[[], tuple[Path, str]], log: Callable[[str], None] = print
) -> ResolvedModel:
    """`spec` is a local folder, a hub id, or empty/"demo" for the built-in model; a folder with no model in it is a
    ValueError.

    `demo()` builds (or loads the cached) demo model and returns its folder and name.
    """
    if spec and spec != "demo":
        folder = Path(spec).expanduser()
        if folder.is_dir():
            if not (folder / "config.json").is_file():  # otherwise transformers fails later with a page of text
                raise UserError(f"{spec} is a folder without a model in it (no config.json)")
            return ResolvedModel(folder.resolve(), str(spec), "local")
        try:
            return ResolvedModel(_from_hub(spec, local_only=True), spec, "hub", "from the local cache")
        except Exception:  # not cached; the hub is the next place to look
            pass
        if not hub_reachable():
            reason = f"{spec} is not in the local cache and {hub_unavailable_reason()}"
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
