"""A served generator: the engine's interface over an OpenAI-compatible server (vLLM started with --enable-lora),
where every LoRA adapter is a model name.

Each arm is one streamed chat completion. The arms' requests go out at once, one thread per arm feeding one queue,
so the panes stream together and the server may batch them; closing the stream cancels, each arm's thread closing
its HTTP stream at its next chunk. The figures are measured here, per request: the client sees neither the server's
queue nor its prefill, only when the request left and when each token arrived.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2  # the openai client's transport: a stream cut midway raises its errors unwrapped
import openai

from adapters.engine import DecodingSettings, GenerationRequest, GenerationResult, RowDone
from adapters.errors import UserError
from adapters.resolver import ModelUnavailable, locate_model
from adapters.served_admin import LoraLoader, ServerInfo, error_message, identify
from adapters.streaming import TokenEvent

logger = logging.getLogger(__name__)

SERVED = "served"  # the arms' requests sent at once
SERVED_SEQUENTIAL = "served-sequential"  # one after another: "time each approach alone"
REQUEST_TIMEOUT_S = 600.0  # between two chunks: a busy server may queue a request for long
CONNECT_TIMEOUT_S = 5.0
TOKENIZER_FILES = ["*.json", "*.txt", "*.model", "*.jinja", "*.tiktoken"]  # a model's tokenizer and config, no weights

# What the page says about the figures a served generator produces (the built-in engine's are in adapters.engine).
TIMING_NOTES = {
    SERVED: (
        "Each approach was its own streamed request to the server, all sent at once; the server may have batched "
        "them together. Times were measured in this app per request, from sending it to its first and last token, "
        "so they include the network and the server's queue; the app cannot see prefill, so prefill is the time to "
        "the first token. Token counts are the server's usage report."
    ),
    SERVED_SEQUENTIAL: (
        "Each approach was its own streamed request to the server, sent one after another, none of this page's "
        "running beside it. Times were measured in this app per request, from sending it to its first and last "
        "token, so they include the network and the server's queue; the app cannot see prefill, so prefill is the "
        "time to the first token. Token counts are the server's usage report."
    ),
}


@dataclass(frozen=True)
class RowFailed:
    """One arm's request failed (the server refused it or could not be reached); the other arms go on."""

    row: int
    error: UserError


ServedEvent = TokenEvent | RowDone | RowFailed


def served_timing(strategy: str | None) -> str:
    """The timing a requested side-by-side strategy gives on a server: the arms at once, or one after another."""
    if strategy in (None, SERVED, SERVED_SEQUENTIAL):
        return strategy or SERVED
    if strategy == "sequential":
        return SERVED_SEQUENTIAL
    raise UserError(
        f"timing {strategy!r} needs the built-in engine; a served generator (PLAYGROUND_GENERATOR_URL) sends the arms "
        "as requests at once, or one after another with timing sequential"
    )


def decoding_options(settings: DecodingSettings) -> dict[str, Any]:
    """The chat completion's decoding parameters; min_tokens is vLLM's own, so it goes in the body as an extra."""
    options: dict[str, Any] = {
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "seed": settings.seed,
    }
    if settings.temperature > 0:  # greedy ignores it, as the built-in engine does
        options["top_p"] = settings.top_p
    if settings.min_new_tokens > 1:
        options["extra_body"] = {"min_tokens": min(settings.min_new_tokens, settings.max_new_tokens)}
    return options


def local_model_files(spec: str) -> tuple[Any, Any, str]:
    """The base model's tokenizer and config (never its weights) where the resolver finds them, locally or on the hub,
    and a note saying why one is missing ("" when both loaded). The demo model is not built for this."""
    if not spec or spec == "demo":
        return None, None, "PLAYGROUND_BASE_MODEL names the built-in demo model, which is not built for a served one"
    try:
        folder = str(locate_model(spec, allow_patterns=TOKENIZER_FILES).path)
    except ModelUnavailable as error:
        return None, None, f"PLAYGROUND_BASE_MODEL={spec} {error.reason}"
    from transformers import AutoConfig, AutoTokenizer

    loaded: dict[str, Any] = {}
    missing = []
    for what, loader in (("tokenizer", AutoTokenizer), ("config", AutoConfig)):
        try:
            loaded[what] = loader.from_pretrained(folder)
        except (OSError, ValueError, KeyError) as error:
            missing.append(f"its {what} did not load ({type(error).__name__})")
    note = f"PLAYGROUND_BASE_MODEL={spec}: {'; '.join(missing)}" if missing else ""
    return loaded.get("tokenizer"), loaded.get("config"), note


@dataclass
class _Arm:
    """One request's stream as it arrives, with the client-side times."""

    sent: float
    first: float | None = None
    last: float | None = None
    parts: list[str] = field(default_factory=list)
    usage: Any = None
    finish: str = ""

    def take(self, chunk: Any, row: int, emit: Callable[[TokenEvent], None]) -> None:
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        for choice in chunk.choices or ():
            text = choice.delta.content if choice.delta else None
            if text:
                now = time.perf_counter()
                self.first = self.first or now
                self.last = now
                self.parts.append(text)
                emit(TokenEvent(row, text))
            if choice.finish_reason:
                self.finish = choice.finish_reason


class ServedEngine:
    """The part of `Engine`'s interface the services use, answered by an OpenAI-compatible server."""

    def __init__(
        self,
        client: openai.OpenAI,
        server: ServerInfo,
        *,
        api_key: str = "",
        tokenizer: Any = None,
        config: Any = None,
        files_note: str = "",
    ) -> None:
        self._client = client
        self.server = server
        self.url = server.url
        self.name = server.base
        self.strategy = SERVED
        self.calibration: dict[str, float] = {}  # nothing to calibrate: the server schedules the requests
        self.tokenizer = tokenizer  # local copies for dataset checks, memory estimates and counts without usage
        self.config = config
        self.files_note = files_note  # why the tokenizer or config is missing
        self._loras = LoraLoader(server.url, server.base, api_key)
        self._lock = threading.Lock()
        self._adapters: dict[str, Path] = server.adapters()
        self.listed = tuple(self._adapters)  # the adapters the server served when the app started

    @classmethod
    def connect(cls, url: str, model: str = "", api_key: str = "", *, base_model: str = "") -> ServedEngine:
        """Reach the server, choose the base model (`model`, else the first that is not a LoRA) and identify the
        server; a UserError in one line when it cannot. `base_model` names where the tokenizer and config are."""
        url = url.rstrip("/")
        client = openai.OpenAI(
            base_url=url,
            api_key=api_key or "EMPTY",  # the client insists on a key; a server without --api-key ignores it
            max_retries=0,  # an arm's failure is shown at once, not after retries
            timeout=openai.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )
        server = identify(client, url, model, api_key)
        tokenizer, config, note = local_model_files(base_model)
        return cls(client, server, api_key=api_key, tokenizer=tokenizer, config=config, files_note=note)

    # -- adapters -----------------------------------------------------------------------------

    @property
    def adapters(self) -> dict[str, Path]:
        with self._lock:
            return dict(self._adapters)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Register a PEFT adapter folder with the server under `name` (vLLM's runtime LoRA loading); a UserError
        says how to start the server with it where the server cannot."""
        if not name:
            raise UserError(f"{name!r} cannot name an adapter")
        folder = Path(path).expanduser().resolve()  # the server resolves paths from its own working directory
        self._loras.load(name, folder)
        with self._lock:
            self._adapters[name] = folder

    def unload_adapter(self, name: str) -> None:
        with self._lock:
            known = self._adapters.pop(name, None)
        if known is not None:
            self._loras.unload(name)

    def with_adapter(self, adapter: str | None, task: Callable[[Any, Any], Any]) -> Any:
        raise UserError(
            "The forgetting check needs the built-in engine: it reads the model's own probabilities, which a served "
            "generator (PLAYGROUND_GENERATOR_URL) does not expose."
        )

    # -- generation ---------------------------------------------------------------------------

    def generate(
        self, requests: Sequence[GenerationRequest], settings: DecodingSettings, strategy: str | None = None
    ) -> list[GenerationResult]:
        """Every request's result; the first arm that failed raises its UserError."""
        results: list[GenerationResult | None] = [None] * len(requests)
        for event in self.stream(requests, settings, strategy):
            if isinstance(event, RowFailed):
                raise event.error
            if isinstance(event, RowDone):
                results[event.row] = event.result
        return [r for r in results if r is not None]

    def stream(
        self, requests: Sequence[GenerationRequest], settings: DecodingSettings, strategy: str | None = None
    ) -> Iterator[ServedEvent]:
        """Send the requests (at once, or one after another for `sequential`); yield text deltas and each row's end:
        its result, or its failure. Closing the iterator closes every arm's stream at its next chunk."""
        timing = served_timing(strategy)
        adapters = self.adapters
        for request in requests:
            if request.adapter is not None and request.adapter not in adapters:
                raise KeyError(f"adapter {request.adapter!r} is not loaded; loaded: {sorted(adapters)}")
        rows = list(enumerate(requests))
        groups = [[row] for row in rows] if timing == SERVED else [rows]
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        for group in groups:
            args = (group, settings, timing, events, cancelled)
            threading.Thread(target=self._send, args=args, name="served-arm", daemon=True).start()
        left = len(rows)
        try:
            while left:
                event = events.get()
                if isinstance(event, BaseException):
                    raise event
                if isinstance(event, RowDone | RowFailed):
                    left -= 1
                yield event
        finally:
            cancelled.set()

    def _send(
        self,
        rows: list[tuple[int, GenerationRequest]],
        settings: DecodingSettings,
        timing: str,
        events: queue.Queue,
        cancelled: threading.Event,
    ) -> None:
        try:
            for row, request in rows:
                if cancelled.is_set():
                    return
                events.put(self._answer(row, request, settings, timing, events.put, cancelled))
        except BaseException as error:  # a bug, not the server's answer: raised in the consuming thread
            events.put(error)

    def _answer(
        self,
        row: int,
        request: GenerationRequest,
        settings: DecodingSettings,
        timing: str,
        emit: Callable[[TokenEvent], None],
        cancelled: threading.Event,
    ) -> RowDone | RowFailed:
        model = request.adapter or self.name  # vLLM serves each LoRA adapter as a model of its own name
        arm = _Arm(time.perf_counter())
        try:
            with self._client.chat.completions.create(
                model=model,
                messages=list(request.messages),  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                **decoding_options(settings),
            ) as stream:
                for chunk in stream:
                    if cancelled.is_set():
                        arm.finish = "cancelled"
                        break
                    arm.take(chunk, row, emit)
        except (openai.APIError, httpx2.HTTPError) as error:
            if cancelled.is_set():
                arm.finish = "cancelled"
            else:
                what = f"HTTP {error.status_code}: " if isinstance(error, openai.APIStatusError) else ""
                message = (
                    f"The server at {self.url} could not answer with model {model!r}: {what}{error_message(error)}"
                )
                return RowFailed(row, UserError(message))
        return RowDone(row, self._result(request, arm, timing))

    def _result(self, request: GenerationRequest, arm: _Arm, timing: str) -> GenerationResult:
        ended = arm.last or time.perf_counter()
        latency = ended - arm.sent
        ttft = (arm.first or ended) - arm.sent
        text = "".join(arm.parts)
        prompt_tokens, completion_tokens, counted_by = self._counts(request, text, arm.usage)
        decode_s = latency - ttft
        return GenerationResult(
            text=text.strip(),
            adapter=request.adapter,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            prefill_s=ttft,  # the client cannot see prefill apart from the first token
            ttft_s=ttft,
            latency_s=latency,
            tokens_per_s=(completion_tokens - 1) / decode_s if completion_tokens > 1 and decode_s > 0 else 0.0,
            finish_reason=arm.finish or "stop",
            timing=timing,
            token_counts=counted_by,
        )

    def _counts(self, request: GenerationRequest, text: str, usage: Any) -> tuple[int, int, str]:
        """(prompt, completion, who counted): the server's usage report, else the local tokenizer, else none."""
        if usage is not None and usage.completion_tokens is not None:
            return int(usage.prompt_tokens), int(usage.completion_tokens), "server"
        if self.tokenizer is not None:
            try:
                prompt = self.tokenizer.apply_chat_template(
                    list(request.messages), tokenize=False, add_generation_prompt=True
                )
                return self._count(prompt), self._count(text), "tokenizer"
            except Exception as error:  # a tokenizer without a chat template: no counts rather than wrong ones
                logger.warning("no token counts: the local tokenizer could not render the prompt (%s)", error)
        return 0, 0, "none"

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
