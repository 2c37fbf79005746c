"""One lookup for every model the playground loads (generator, embedder, reranker): a folder, else the local
cache, else the hub when it is reachable; for the generator, the built-in demo model after that."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

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


class ModelUnavailable(UserError):
    """No folder, local cache or reachable hub has the model; `reason` says what was found, in words that follow the
    model's name ("is not in the local cache and the hub is unreachable")."""

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__(f"{spec} {reason}")
        self.reason = reason

    @property
    def after_colon(self) -> str:
        """The reason as it reads after "name: " ("not in the local cache and …")."""
        return self.reason.removeprefix("is ")


Found = Literal["local", "cache", "hub"]
FOUND_NOTES: dict[Found, str] = {
    "local": "local folder",
    "cache": "from the local cache",
    "hub": "downloaded from the hub",
}


@dataclass(frozen=True)
class ModelLocation:
    path: Path
    found: Found

    @property
    def note(self) -> str:
        return FOUND_NOTES[self.found]


def locate_model(
    spec: str, *, markers: tuple[str, ...] = ("config.json",), allow_patterns: list[str] | None = None
) -> ModelLocation:
    """The folder holding the model `spec` names: the folder itself (which must hold one of `markers`), else the
    hub id's snapshot in the local cache, else a download when the hub is reachable. Raises ModelUnavailable with
    the reason in one line; callers decide whether that is an error or a fallback."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if not any((folder / name).is_file() for name in markers):  # else the loader fails later with a page of text
            raise ModelUnavailable(spec, f"is a folder without a model in it (no {' or '.join(markers)})")
        return ModelLocation(folder.resolve(), "local")
    try:
        return ModelLocation(_snapshot(spec, allow_patterns, local_only=True), "cache")
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError) or not a hub id (HFValidationError)
        pass
    if not hub_reachable():
        raise ModelUnavailable(spec, f"is not in the local cache and {hub_unavailable_reason()}")
    logger.info("downloading %s from the Hugging Face Hub", spec)
    try:
        return ModelLocation(_snapshot(spec, allow_patterns, local_only=False), "hub")
    except (OSError, ValueError, httpx.HTTPError) as error:  # missing, gated, cut off: the hub's errors
        raise ModelUnavailable(spec, f"could not be downloaded ({type(error).__name__})") from error


def _snapshot(repo_id: str, allow_patterns: list[str] | None, *, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=allow_patterns, local_files_only=local_only))


def resolve_model(spec: str | None, demo: Callable[[], tuple[Path, str]]) -> ResolvedModel:
    """The generator: `spec` is a local folder, a hub id, or empty/"demo" for the built-in model. A folder with no
    model in it is a UserError; a hub id that cannot be had falls back to the demo model, saying why.

    `demo()` builds (or loads the cached) demo model and returns its folder and name.
    """
    if spec and spec != "demo":
        if Path(spec).expanduser().is_dir():  # a folder is what the user chose: no model in it is their mistake
            return ResolvedModel(locate_model(spec).path, str(spec), "local")
        try:
            found = locate_model(spec, allow_patterns=MODEL_FILES)
        except ModelUnavailable as unavailable:
            reason = str(unavailable)
            logger.warning("%s; using the built-in demo model", reason)
        else:
            return ResolvedModel(found.path, spec, "hub", "" if found.found == "hub" else found.note)
    else:
        reason = "the built-in demo model was asked for"
    path, name = demo()
    return ResolvedModel(path, name, "demo", reason)
