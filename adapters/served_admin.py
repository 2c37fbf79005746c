"""What the app asks of a served generator besides answers: the models it serves, which server it is, and LoRA
adapters loaded while it runs (vLLM's `/v1/load_lora_adapter`).

vLLM lists the base model and every LoRA on `GET /v1/models` (a LoRA's entry has `parent`: its base model, and
`root`: its folder); `GET /version` at the server's root says its version. Runtime LoRA loading exists only when the
server was started with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True; otherwise the endpoint answers 404.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from adapters.errors import UserError

logger = logging.getLogger(__name__)

RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
SERVER_NAMES = {"vllm": "vLLM"}  # `owned_by` on /v1/models → the server's name as the page writes it
VERSION_TIMEOUT_S = 3.0  # /version is a nicety: a server without it must not hold the start
LORA_TIMEOUT_S = 120.0  # the server reads the adapter's weights before it answers


@dataclass(frozen=True)
class ServedModel:
    id: str
    parent: str | None = None  # the base model, for a LoRA adapter
    root: str | None = None  # where the server loaded it from
    owned_by: str = ""


@dataclass(frozen=True)
class ServerInfo:
    url: str  # the OpenAI base URL, e.g. http://localhost:8000/v1
    base: str  # the base model's name on the server
    owned_by: str
    version: str
    models: tuple[ServedModel, ...]

    @property
    def name(self) -> str:
        server = SERVER_NAMES.get(self.owned_by.lower(), self.owned_by) or "an OpenAI-compatible server"
        return f"{server} {self.version}" if self.version else server

    def describe(self) -> str:
        return f"served by {self.name} at {self.url}"

    def adapters(self) -> dict[str, Path]:
        """The LoRA adapters served on this base: models whose parent it is, and other models that name no parent."""
        return {m.id: Path(m.root or m.id) for m in self.models if m.id != self.base and m.parent in (None, self.base)}


def server_root(url: str) -> str:
    """The server's root (where vLLM answers /version): the base URL without its /v1."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def auth_headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def body_message(body: object) -> str:
    """The message of an OpenAI-style error body ({"error": {"message"}} or {"message"}) or FastAPI's {"detail"}."""
    if isinstance(body, dict):
        inner = body["error"] if isinstance(body.get("error"), dict) else body
        for key in ("message", "detail"):
            if inner.get(key):
                return one_line(inner[key])
    return ""


def error_message(error: Exception) -> str:
    """The server's own words, else the cause of a connection failure, else the exception's."""
    if message := body_message(getattr(error, "body", None)):
        return message
    if isinstance(error, openai.APIConnectionError) and error.__cause__ is not None:
        return one_line(f"{type(error.__cause__).__name__}: {error.__cause__}")
    return one_line(getattr(error, "message", "") or str(error) or type(error).__name__)


def list_models(client: openai.OpenAI, url: str) -> list[ServedModel]:
    try:
        page = client.models.list()
    except openai.APIConnectionError as error:
        raise UserError(f"No server answers at {url} (PLAYGROUND_GENERATOR_URL): {error_message(error)}.") from None
    except openai.APIStatusError as error:
        hint = "; an OpenAI-compatible URL usually ends in /v1" if error.status_code == 404 else ""
        raise UserError(
            f"{url}/models answered HTTP {error.status_code} ({error_message(error)}){hint} (PLAYGROUND_GENERATOR_URL)."
        ) from None
    return [
        ServedModel(m.id, getattr(m, "parent", None), getattr(m, "root", None), getattr(m, "owned_by", None) or "")
        for m in page.data
    ]


def choose_base(models: list[ServedModel], wanted: str, url: str) -> ServedModel:
    """The base model asked for, else the first listed model that is not a LoRA; a UserError naming what is served."""
    listed = ", ".join(m.id for m in models) or "no models"
    if wanted:
        for model in models:
            if model.id == wanted:
                return model
        raise UserError(
            f"The server at {url} does not serve {wanted!r} (PLAYGROUND_GENERATOR_MODEL); it lists: {listed}."
        )
    for model in models:
        if not model.parent:
            return model
    raise UserError(f"The server at {url} lists no base model (it lists: {listed}); set PLAYGROUND_GENERATOR_MODEL.")


def server_version(url: str, api_key: str) -> str:
    """The server's version from `GET /version` (vLLM), or "" where it has none."""
    try:
        response = httpx.get(f"{server_root(url)}/version", headers=auth_headers(api_key), timeout=VERSION_TIMEOUT_S)
        version = response.json().get("version", "") if response.is_success else ""
    except (httpx.HTTPError, ValueError, AttributeError):
        return ""
    return one_line(version, 40) if isinstance(version, str) else ""


def identify(client: openai.OpenAI, url: str, wanted: str, api_key: str) -> ServerInfo:
    models = list_models(client, url)
    base = choose_base(models, wanted, url)
    owned_by = base.owned_by or next((m.owned_by for m in models if m.owned_by), "")
    return ServerInfo(url, base.id, owned_by, server_version(url, api_key), tuple(models))


# ---- LoRA adapters loaded while the server runs ------------------------------------------------------------------


def serve_command(base: str, name: str, path: Path) -> str:
    """The vLLM command line that serves `base` with the adapter `name` from `path`."""
    rank = _lora_rank(path)
    rank_flag = f" --max-lora-rank {rank}" if rank else ""
    return f"vllm serve {base} --enable-lora{rank_flag} --lora-modules {name}={path}"


def _lora_rank(path: Path) -> int | None:
    try:
        rank = json.loads((path / "adapter_config.json").read_text()).get("r")
    except (OSError, ValueError, AttributeError):
        return None
    return rank if isinstance(rank, int) else None


class LoraLoader:
    """Registers adapters with a running vLLM server (`POST /v1/load_lora_adapter`, `/v1/unload_lora_adapter`)."""

    def __init__(self, url: str, base: str, api_key: str = "") -> None:
        self.url = url.rstrip("/")
        self.base = base
        self.headers = auth_headers(api_key)

    def load(self, name: str, path: Path) -> None:
        response = self._post("load_lora_adapter", {"lora_name": name, "lora_path": str(path)}, name, path)
        if response.status_code == 400 and "already" in response.text:  # a new version under a known name
            self._post("unload_lora_adapter", {"lora_name": name}, name, path)
            response = self._post("load_lora_adapter", {"lora_name": name, "lora_path": str(path)}, name, path)
        if response.is_success:
            return
        if response.status_code in (404, 405):
            reason = "it has no /v1/load_lora_adapter endpoint: runtime LoRA loading is off"
        else:
            reason = f"HTTP {response.status_code}: {_response_message(response)}"
        raise UserError(self.how_to(name, path, reason))

    def unload(self, name: str) -> None:
        """Best effort: a server that cannot unload keeps serving the adapter, which harms nothing here."""
        try:
            response = httpx.post(
                f"{self.url}/unload_lora_adapter",
                json={"lora_name": name},
                headers=self.headers,
                timeout=LORA_TIMEOUT_S,
            )
        except httpx.HTTPError as error:
            logger.warning("could not unload LoRA adapter %s from %s: %s", name, self.url, error)
            return
        if not response.is_success:
            logger.warning(
                "%s did not unload LoRA adapter %s: HTTP %d %s",
                self.url,
                name,
                response.status_code,
                _response_message(response),
            )

    def how_to(self, name: str, path: Path, reason: str) -> str:
        return (
            f"The server at {self.url} did not load the LoRA adapter {name!r} ({reason}). Start it with the adapter: "
            f"`{serve_command(self.base, name, path)}`; or start it with {RUNTIME_LORA_ENV} in its environment (and "
            f"--enable-lora) so that adapters trained here are loaded while it runs (it must be able to read {path})."
        )

    def _post(self, endpoint: str, body: dict[str, Any], name: str, path: Path) -> httpx.Response:
        try:
            return httpx.post(f"{self.url}/{endpoint}", json=body, headers=self.headers, timeout=LORA_TIMEOUT_S)
        except httpx.HTTPError as error:
            raise UserError(self.how_to(name, path, f"no answer: {type(error).__name__}: {error}")) from None


def _response_message(response: httpx.Response) -> str:
    try:
        message = body_message(response.json())
    except ValueError:
        message = ""
    return message or one_line(response.text or response.reason_phrase)
