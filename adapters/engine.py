"""The engine: one base model, LoRA adapters attached through peft, batched streaming generation.

Every row of a comparison (RAG = base + context, fine-tuned = adapter, hybrid = adapter + context)
runs in ONE `generate` call with peft's mixed-adapter batches (`adapter_names`), so the base
weights are in memory once and decoding, which is memory-bound, serves all rows at once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from adapters.streaming import BatchRowStreamer, RowFinished, TokenEvent

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" inside a mixed batch


@dataclass(frozen=True)
class DecodingSettings:
    """Decoding shared by every row of a batch, so the rows differ only in prompt and adapter."""

    max_new_tokens: int = 128
    min_new_tokens: int = 1  # an answer pane never ends empty because the model stopped at once
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[dict[str, str]]
    adapter: str | None = None  # None: the base model alone


@dataclass(frozen=True)
class GenerationResult:
    text: str
    adapter: str | None
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    latency_s: float
    tokens_per_s: float
    finish_reason: str  # "stop" (end-of-sequence token) or "length" (max_new_tokens)


@dataclass(frozen=True)
class RowDone:
    row: int
    result: GenerationResult


EngineEvent = TokenEvent | RowDone


class _Cancelled(StoppingCriteria):
    def __init__(self, flag: threading.Event) -> None:
        self.flag = flag

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.flag.is_set(), dtype=torch.bool, device=input_ids.device)


@dataclass
class _Job:
    requests: list[GenerationRequest]
    settings: DecodingSettings
    events: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Set by the worker before generation starts; a row's record is final once it is finished.
    streamer: BatchRowStreamer | None = None
    prompt_tokens: list[int] = field(default_factory=list)
    started: float = 0.0


_END = object()


class Engine:
    """Owns the base model, its tokenizer and the adapters attached to it.

    Generation is serialised by a lock: one batched call at a time uses the model.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, name: str = "") -> None:
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or "model"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._adapters: dict[str, Path] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path, *, name: str = "", device: str | None = None) -> Engine:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
        return cls(model, tokenizer, name=name or str(path))

    # -- adapters -----------------------------------------------------------------------------

    @property
    def adapters(self) -> dict[str, Path]:
        return dict(self._adapters)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Attach a PEFT LoRA adapter directory under `name`; the base weights are shared."""
        from peft import PeftModel

        if name == BASE_ADAPTER:
            raise ValueError(f"{BASE_ADAPTER!r} is reserved for the base model")
        with self._lock:
            if name in self._adapters:
                self.model.delete_adapter(name)
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            self.model.eval()
            self._adapters[name] = Path(path)

    def unload_adapter(self, name: str) -> None:
        """Detach an adapter (before its folder is deleted); unknown names are ignored."""
        with self._lock:
            if name in self._adapters:
                self.model.delete_adapter(name)
                del self._adapters[name]

    # -- prompts ------------------------------------------------------------------------------

    def render_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ---------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerationRequest], settings: DecodingSettings) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        for event in self.stream(requests, settings):
            if isinstance(event, RowDone):
                results[event.row] = event.result
        return [r for r in results if r is not None]

    def stream(self, requests: Sequence[GenerationRequest], settings: DecodingSettings) -> Iterator[EngineEvent]:
        """Run all requests in one batched call; yield text deltas and each row's result as it ends.

        Closing the iterator early cancels the generation after the current step.
        """
        for request in requests:
            if request.adapter is not None and request.adapter not in self._adapters:
                raise KeyError(f"adapter {request.adapter!r} is not loaded; loaded: {sorted(self._adapters)}")
        job = _Job(list(requests), settings)
        worker = threading.Thread(target=self._run, args=(job,), name="engine-generate", daemon=True)
        worker.start()
        try:
            while True:
                event = job.events.get()
                if event is _END:
                    break
                if isinstance(event, BaseException):
                    raise event
                if isinstance(event, RowFinished):
                    yield RowDone(event.row, self._result(job, event.row))
                else:
                    yield event
        finally:
            job.cancelled.set()

    def _run(self, job: _Job) -> None:
        try:
            with self._lock:
                self._generate_locked(job)
        except BaseException as error:  # handed to the consuming thread, which re-raises it
            job.events.put(error)
        finally:
            job.events.put(_END)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (configured, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        return ids

    def _generate_locked(self, job: _Job) -> None:
        from peft import PeftModel

        settings = job.settings
        prompts = [self.render_prompt(r.messages) for r in job.requests]
        batch = self.tokenizer(
            prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        )
        batch = batch.to(self.model.device)
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        eos_ids = self._eos_ids()
        streamer = BatchRowStreamer(self.tokenizer, len(prompts), eos_ids, job.events)
        kwargs: dict[str, object] = {
            **batch,
            "max_new_tokens": settings.max_new_tokens,
            "min_new_tokens": min(settings.min_new_tokens, settings.max_new_tokens),
            "streamer": streamer,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(eos_ids),
            "stopping_criteria": StoppingCriteriaList([_Cancelled(job.cancelled)]),
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if isinstance(self.model, PeftModel):
            kwargs["adapter_names"] = [r.adapter or BASE_ADAPTER for r in job.requests]
        torch.manual_seed(settings.seed)
        job.streamer, job.prompt_tokens = streamer, [int(n) for n in prompt_tokens]
        job.started = time.perf_counter()
        with torch.inference_mode():
            self.model.generate(**kwargs)

    def _result(self, job: _Job, index: int) -> GenerationResult:
        assert job.streamer is not None
        row = job.streamer.rows[index]
        latency = (row.finished_at or time.perf_counter()) - job.started
        ttft = (row.first_token_at or job.started) - job.started
        produced = len(row.token_ids) + (1 if row.finish_reason == "stop" else 0)
        decode_time = latency - ttft
        return GenerationResult(
            text=self.tokenizer.decode(row.token_ids, skip_special_tokens=True).strip(),
            adapter=job.requests[index].adapter,
            prompt_tokens=job.prompt_tokens[index],
            completion_tokens=produced,
            ttft_s=ttft,
            latency_s=latency,
            tokens_per_s=(produced - 1) / decode_time if produced > 1 and decode_time > 0 else 0.0,
            finish_reason=row.finish_reason,
        )
