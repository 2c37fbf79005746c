"""The engine: one base model, LoRA adapters attached through peft, streaming generation for several arms.

One long-lived worker thread runs every model call (generation, attaching and detaching adapters): `generate`
in a freshly started thread ran ~5× slower per token on a GPU than in a thread that lives on, and one owner
means no locks around the model. Callers get a stream of events; closing it cancels the generation within
one decoding step and frees the worker for the next request.

Several arms (base, RAG, fine-tuned, hybrid) run side by side by one of the strategies in `SIDE_BY_SIDE`:
- `interleaved`: each arm alone (batch of one, its own KV cache), the arms taking turns step by step, so
  the panes stream together and each arm's figures are the sum of its own steps, as if served alone;
- `sequential`: each arm alone, one after another (exact wall-clock figures per arm);
- `batched`: one mixed-adapter `generate` (peft `adapter_names`), which pays on a GPU; each arm's prefill
  is timed alone first, its decoding steps are shared with the other rows.
`Engine.calibrate` measures which of `interleaved` and `batched` is faster for the loaded model.

Questions from several people that reach the engine while it is generating wait; when it is free, the oldest
one and those that arrived since (greedy, same limits, up to `batch_rows` rows) are decoded in one batch
(`micro-batched`), so many users share the model's steps instead of queueing one behind another.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)

from adapters.errors import UserError
from adapters.sampling import TokenPicker
from adapters.streaming import BatchRowStreamer, RowProgress, TokenEvent, TokenText

T = TypeVar("T")
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" inside a mixed batch
# Rows one decoding batch may hold when questions from several people wait for the worker (micro-batching).
DEFAULT_BATCH_ROWS = 32
_UNKNOWN = "\0unknown"  # the model's adapter state is not known: the next `_use` sets it whatever it was


@dataclass(frozen=True)
class DecodingSettings:
    """Decoding shared by every arm, so the arms differ only in prompt and adapter."""

    max_new_tokens: int = 128
    min_new_tokens: int = 1  # an answer pane never ends empty because the model stopped at once
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    messages: Sequence[dict[str, str]]
    adapter: str | None = None  # a display name given to `load_adapter`; None: the base model alone


@dataclass(frozen=True)
class GenerationResult:
    """One arm's answer and what it cost the model, as if this arm had been served alone (see `timing`)."""

    text: str
    adapter: str | None
    prompt_tokens: int
    completion_tokens: int
    prefill_s: float  # the forward pass over this arm's own prompt (it yields the first token)
    ttft_s: float  # from the arm's start to its first token
    latency_s: float  # from the arm's start to its last token
    tokens_per_s: float  # decoding rate after the first token
    finish_reason: str  # "stop" (end-of-sequence token), "length" (max_new_tokens) or "cancelled"
    timing: str  # the strategy that produced the figures: interleaved, sequential, batched or micro-batched
    token_counts: str = "tokenizer"  # who counted the tokens: the model's tokenizer, or a server's usage report
    waited_s: float = 0.0  # micro-batched: from reaching the engine to its batch's start (in ttft and latency)
    batch_rows: int = 1  # rows decoded together in its batch, other people's questions included


@dataclass(frozen=True)
class RowDone:
    row: int
    result: GenerationResult


EngineEvent = TokenEvent | RowDone


class StreamCancelled(Exception):
    """Internal: the consumer closed the stream."""


@dataclass
class _Job:
    requests: list[GenerationRequest]
    settings: DecodingSettings
    strategy: str
    events: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.perf_counter)

    def joins(self, other: _Job) -> bool:
        """Whether this job can share a decoding batch with `other` without changing either's tokens: greedy
        decoding with the same limits (sampling would draw other numbers in a bigger batch); a job that asked
        for exact figures (`sequential`) always runs alone."""
        return (
            self.strategy != "sequential" != other.strategy
            and self.settings.temperature == 0 == other.settings.temperature
            and self.settings.max_new_tokens == other.settings.max_new_tokens
            and self.settings.min_new_tokens == other.settings.min_new_tokens
        )


@dataclass(frozen=True)
class _Row:
    """One row of a batched `generate`: a request of a job, at its position in that job."""

    job: _Job
    index: int
    request: GenerationRequest


_END = object()


class _Worker:
    """One daemon thread that runs submitted calls in order, for the life of the engine.

    A forked child process (ZeroGPU runs each GPU call in one) inherits the engine but not its thread: the first call
    there starts the child's own worker."""

    def __init__(self) -> None:
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._tasks: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="engine-worker", daemon=True)
        self._thread.start()

    def submit(self, task: Callable[[], Any]) -> Future:
        if os.getpid() != self._pid:
            self._start()
        future: Future = Future()
        self._tasks.put((task, future))
        return future

    def call(self, task: Callable[[], Any]) -> Any:
        if threading.current_thread() is self._thread:  # already on the worker: run inline
            return task()
        return self.submit(task).result()

    def _loop(self) -> None:
        while True:
            task, future = self._tasks.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(task())
            except BaseException as error:  # handed to whoever waits on the future
                future.set_exception(error)


@dataclass
class _Arm:
    """One arm decoding alone: its own KV cache, sampler and timings (its own compute time only)."""

    row: int
    request: GenerationRequest
    input_ids: torch.Tensor  # (1, prompt + generated so far)
    picker: TokenPicker
    text: TokenText
    cache: Any = None
    next_token: torch.Tensor | None = None
    busy_s: float = 0.0
    prefill_s: float = 0.0
    produced: int = 0
    finish_reason: str = ""

    @property
    def done(self) -> bool:
        return bool(self.finish_reason)


class Engine:
    """Owns the base model, its tokenizer and the adapters attached to it; every model call runs on its worker."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str = "",
        strategy: str = "auto",
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or "model"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._adapters: dict[str, Path] = {}
        # peft adapter names become module attributes ("train", "eval", "forward" … clash), so peft only
        # ever sees names made here; what users call an adapter stays a display name.
        self._internal: dict[str, str] = {}
        self._serial = itertools.count()
        self._active: str | None = None  # the internal adapter name answering now (None: adapters off)
        self._selected: str | None = None  # the adapter peft has active (answering when adapters are on)
        self._layers: list[Any] | None = None  # the LoRA layers, found once per set of adapters
        self.threads = 0  # torch threads of the worker (0: torch's default), chosen by `calibrate`
        self._worker = _Worker()
        # Jobs waiting for the worker: those that arrive while it generates join the next batch, up to
        # `batch_rows` rows (1: every job runs alone).
        self._waiting: deque[_Job] = deque()
        self._waiting_lock = threading.Lock()
        self._pid = os.getpid()
        self.batch_rows = batch_rows
        if strategy not in (*SIDE_BY_SIDE, "auto"):
            expected = ", ".join(SIDE_BY_SIDE)
            raise UserError(f"side-by-side strategy is {strategy!r}; expected auto or one of {expected}")
        self.strategy = "interleaved" if strategy == "auto" else strategy
        self.calibration: dict[str, float] = {}

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        name: str = "",
        device: str | None = None,
        strategy: str = "auto",
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> Engine:
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            kind = torch.device(device).type
        except RuntimeError as error:
            raise UserError(f"device {device!r} (PLAYGROUND_DEVICE) is not a torch device: {error}") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise UserError(f"device {device!r} (PLAYGROUND_DEVICE): this torch sees no CUDA GPU; use cpu")
        dtype = torch.bfloat16 if kind == "cuda" else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device)
        return cls(model, tokenizer, name=name or str(path), strategy=strategy, batch_rows=batch_rows)

    # -- adapters -----------------------------------------------------------------------------

    @property
    def adapters(self) -> dict[str, Path]:
        return dict(self._adapters)

    def load_adapter(self, name: str, path: str | Path) -> None:
        """Attach a PEFT LoRA adapter directory under the display name `name`; the base weights are shared."""
        if not name or name == BASE_ADAPTER:
            raise UserError(f"{name!r} cannot name an adapter")
        self._worker.call(lambda: self._load_adapter(name, Path(path)))

    def _load_adapter(self, name: str, path: Path) -> None:
        from peft import PeftModel

        internal = f"pg_adapter_{next(self._serial)}"
        with warnings.catch_warnings():  # peft calls a transformers method deprecated in favour of another
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=internal)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=internal)
        self.model.eval()
        self._forget_adapter_state()
        if name in self._internal:  # a new version under a known name replaces the old one
            self._delete_internal(self._internal[name])
        self._internal[name] = internal
        self._adapters[name] = path

    def unload_adapter(self, name: str) -> None:
        """Detach an adapter (before its folder is deleted); unknown names are ignored."""

        def unload() -> None:
            if name in self._adapters:
                self._delete_internal(self._internal.pop(name))
                del self._adapters[name]

        self._worker.call(unload)

    def _delete_internal(self, internal: str) -> None:
        with warnings.catch_warnings():  # "was active, now deleted": expected, the next arm sets its own
            warnings.simplefilter("ignore", UserWarning)
            self.model.delete_adapter(internal)
        self._forget_adapter_state()  # peft picked another active adapter

    def internal_name(self, name: str | None) -> str:
        """The name peft knows an adapter by (for a mixed batch's `adapter_names`)."""
        return BASE_ADAPTER if name is None else self._internal[name]

    def _use(self, adapter: str | None) -> None:
        """Make the model answer with one adapter (display name) or none; switches only on change.

        Interleaved arms switch every step, so the switch touches only the LoRA layers (a cached list), and
        peft's whole-model `set_adapter` runs only when a different adapter is chosen.
        """
        from peft import PeftModel

        if not isinstance(self.model, PeftModel):
            return
        internal = None if adapter is None else self._internal[adapter]
        if internal == self._active:
            return
        if internal is not None and internal != self._selected:
            self.model.set_adapter(internal)
            self._selected = internal
        for layer in self._lora_layers():
            layer.enable_adapters(internal is not None)
        self._active = internal

    def _lora_layers(self) -> list[Any]:
        if self._layers is None:
            from peft.tuners.tuners_utils import BaseTunerLayer

            self._layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]
        return self._layers

    def _forget_adapter_state(self) -> None:
        """After peft changed adapters itself (load, delete, a mixed batch): the next `_use` sets everything."""
        self._active = self._selected = _UNKNOWN
        self._layers = None

    def with_adapter(self, adapter: str | None, task: Callable[[Any, Any], T]) -> T:
        """Runs `task(model, tokenizer)` on the worker with `adapter` (display name) answering, or none: for
        measurements of the model itself (the forgetting check's perplexity and answers)."""

        def run() -> T:
            self._use(adapter)
            return task(self.model, self.tokenizer)

        return self._worker.call(run)

    # -- prompts ------------------------------------------------------------------------------

    @property
    def config(self) -> Any:
        """The base model's configuration (its sizes, for the fine-tune memory estimate)."""
        return self.model.config

    def render_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def eos_ids(self) -> set[int]:
        ids: set[int] = set()
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for value in (configured, self.tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(int(v) for v in value)
        return ids

    # -- generation ---------------------------------------------------------------------------

    def generate(
        self, requests: Sequence[GenerationRequest], settings: DecodingSettings, strategy: str | None = None
    ) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        for event in self.stream(requests, settings, strategy):
            if isinstance(event, RowDone):
                results[event.row] = event.result
        return [r for r in results if r is not None]

    def stream(
        self, requests: Sequence[GenerationRequest], settings: DecodingSettings, strategy: str | None = None
    ) -> Iterator[EngineEvent]:
        """Run the requests side by side (`strategy`, default the engine's); yield text deltas and each row's
        result as it ends. Closing the iterator cancels the generation within one decoding step."""
        strategy = strategy or self.strategy
        if strategy not in SIDE_BY_SIDE:
            raise UserError(f"side-by-side strategy is {strategy!r}; expected one of {', '.join(SIDE_BY_SIDE)}")
        for request in requests:
            if request.adapter is not None and request.adapter not in self._adapters:
                raise KeyError(f"adapter {request.adapter!r} is not loaded; loaded: {sorted(self._adapters)}")
        job = _Job(list(requests), settings, strategy)
        if os.getpid() != self._pid:  # a forked child: the parent's waiting jobs are not this process's to answer
            self._pid, self._waiting, self._waiting_lock = os.getpid(), deque(), threading.Lock()
        with self._waiting_lock:
            self._waiting.append(job)
        self._worker.submit(self._run_next)
        try:
            while True:
                event = job.events.get()
                if event is _END:
                    break
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            job.cancelled.set()

    def _run_next(self) -> None:
        """On the worker: the oldest waiting job, with the jobs that arrived meanwhile and can join its batch."""
        group = self._next_group()
        if not group:
            return  # an earlier call took this job into its batch
        try:
            with torch.inference_mode():
                if len(group) == 1:
                    if not group[0].cancelled.is_set():
                        SIDE_BY_SIDE[group[0].strategy](self, group[0])
                else:
                    self._run_micro_batch(group)
        except StreamCancelled:
            pass
        except BaseException as error:  # handed to the consuming threads, which re-raise it
            for job in group:
                job.events.put(error)
        finally:
            for job in group:
                job.events.put(_END)

    def _next_group(self) -> list[_Job]:
        with self._waiting_lock:
            while self._waiting and self._waiting[0].cancelled.is_set():  # closed before it started
                self._waiting.popleft().events.put(_END)
            if not self._waiting:
                return []
            first = self._waiting.popleft()
            group, rows = [first], len(first.requests)
            if not first.joins(first):
                return group
            for job in list(self._waiting):
                if rows + len(job.requests) > self.batch_rows:
                    break
                if job.joins(first) and not job.cancelled.is_set():
                    self._waiting.remove(job)
                    group.append(job)
                    rows += len(job.requests)
            return group

    # -- arms alone: interleaved or one after another -----------------------------------------

    def _arms(self, job: _Job) -> list[_Arm]:
        arms = []
        eos = self.eos_ids()
        for row, request in enumerate(job.requests):
            ids = self.tokenizer(self.render_prompt(request.messages), return_tensors="pt", add_special_tokens=False)
            input_ids = ids["input_ids"].to(self.model.device)
            picker = TokenPicker(job.settings, eos, prompt_length=input_ids.shape[1], device=self.model.device)
            arms.append(_Arm(row, request, input_ids, picker, TokenText(self.tokenizer)))
        return arms

    def _step(self, arm: _Arm, job: _Job) -> None:
        """One forward pass of one arm (its prefill first), timed; emits its token's text or its end."""
        from transformers import DynamicCache

        if job.cancelled.is_set():
            raise StreamCancelled
        started = time.perf_counter()
        self._use(arm.request.adapter)
        if arm.cache is None:
            arm.cache = DynamicCache(config=self.model.config)
            inputs = arm.input_ids
        else:
            inputs = arm.next_token.view(1, 1)
        logits = self.model(input_ids=inputs, past_key_values=arm.cache, use_cache=True).logits[:, -1, :]
        token = arm.picker.pick(arm.input_ids, logits)
        token_id = int(token)
        elapsed = time.perf_counter() - started
        arm.busy_s += elapsed
        if arm.produced == 0:
            arm.prefill_s = elapsed
        arm.produced += 1
        arm.next_token = token
        arm.input_ids = torch.cat([arm.input_ids, token.view(1, 1)], dim=1)
        if token_id in arm.picker.eos_ids:
            arm.finish_reason = "stop"
        else:
            if delta := arm.text.add(token_id):
                job.events.put(TokenEvent(arm.row, delta))
            if arm.produced >= job.settings.max_new_tokens:
                arm.finish_reason = "length"
        if arm.done:
            job.events.put(RowDone(arm.row, self._arm_result(arm, job.strategy)))

    def _arm_result(self, arm: _Arm, strategy: str) -> GenerationResult:
        decode_s = arm.busy_s - arm.prefill_s
        return GenerationResult(
            text=arm.text.final(),
            adapter=arm.request.adapter,
            prompt_tokens=int(arm.input_ids.shape[1] - arm.produced),
            completion_tokens=arm.produced,
            prefill_s=arm.prefill_s,
            ttft_s=arm.prefill_s,
            latency_s=arm.busy_s,
            tokens_per_s=(arm.produced - 1) / decode_s if arm.produced > 1 and decode_s > 0 else 0.0,
            finish_reason=arm.finish_reason,
            timing=strategy,
        )

    def _run_interleaved(self, job: _Job) -> None:
        # Arms with the same adapter take their turns next to each other: fewer adapter switches per round.
        arms = sorted(self._arms(job), key=lambda a: (a.request.adapter or "", a.row))
        while active := [arm for arm in arms if not arm.done]:
            for arm in active:
                self._step(arm, job)

    def _run_sequential(self, job: _Job) -> None:
        for arm in self._arms(job):
            while not arm.done:
                self._step(arm, job)

    # -- one mixed-adapter batch --------------------------------------------------------------

    def _run_batched(self, job: _Job) -> None:
        prefill = [self._prefill_alone(request) for request in job.requests]  # each arm's own prefill time
        rows = [_Row(job, index, request) for index, request in enumerate(job.requests)]

        def result(row: int, progress: RowProgress, prompt_tokens: int, started: float) -> GenerationResult:
            first = progress.first_token_at or started
            decode_s = max((progress.finished_at or time.perf_counter()) - first, 0.0)
            latency = prefill[row] + decode_s
            return self._row_result(rows[row], progress, prompt_tokens, prefill[row], latency, "batched", len(rows))

        self._generate_rows(rows, job.settings, result)
        if job.cancelled.is_set():
            raise StreamCancelled

    def _run_micro_batch(self, jobs: list[_Job]) -> None:
        """Several people's questions that arrived while the worker was busy, decoded as one batch: each row's
        times run from when its question reached the engine (the wait included); its steps are shared."""
        rows = [_Row(job, index, request) for job in jobs for index, request in enumerate(job.requests)]

        def result(row: int, progress: RowProgress, prompt_tokens: int, started: float) -> GenerationResult:
            waited = started - rows[row].job.arrived
            first = progress.first_token_at or started
            finished = progress.finished_at or time.perf_counter()
            shared = self._row_result(
                rows[row], progress, prompt_tokens, first - started, finished - started, "micro-batched", len(rows)
            )
            return replace(shared, ttft_s=waited + shared.ttft_s, latency_s=waited + shared.latency_s, waited_s=waited)

        self._generate_rows(rows, jobs[0].settings, result)

    def _generate_rows(
        self,
        rows: list[_Row],
        settings: DecodingSettings,
        result: Callable[[int, RowProgress, int, float], GenerationResult],
    ) -> None:
        """One `generate` over every row (mixed adapters), streaming each row's text to its own job; a job
        that is closed stops its rows, the others go on. `result(row, progress, prompt_tokens, started)`."""
        from peft import PeftModel

        requests = [row.request for row in rows]
        prompts = [self.render_prompt(r.messages) for r in requests]
        batch = self.tokenizer(
            prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        ).to(self.model.device)
        prompt_tokens = [int(n) for n in batch["attention_mask"].sum(dim=1).tolist()]
        eos_ids = self.eos_ids()

        def emit(event: TokenEvent) -> None:
            rows[event.row].job.events.put(TokenEvent(rows[event.row].index, event.text))

        def finished(row: int) -> None:
            done = result(row, streamer.rows[row], prompt_tokens[row], streamer.started)
            rows[row].job.events.put(RowDone(rows[row].index, done))

        streamer = BatchRowStreamer(self.tokenizer, len(rows), eos_ids, emit, finished)
        kwargs: dict[str, object] = {
            **batch,
            "max_new_tokens": settings.max_new_tokens,
            "min_new_tokens": min(settings.min_new_tokens, settings.max_new_tokens),
            "streamer": streamer,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": sorted(eos_ids),
            "stopping_criteria": StoppingCriteriaList([_Cancelled([row.job.cancelled for row in rows])]),
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        masks: list[Any] = []
        if isinstance(self.model, PeftModel):
            masks = self._row_masks(requests)
            if not masks:  # several adapters, or LoRA variants a mask cannot gate: peft's mixed batch
                self.model.base_model.enable_adapter_layers()
                self._forget_adapter_state()
                kwargs["adapter_names"] = [self.internal_name(r.adapter) for r in requests]
        torch.manual_seed(settings.seed)
        streamer.started = time.perf_counter()
        try:
            self.model.generate(**kwargs)
        finally:
            for hook in masks:
                hook.remove()

    def _row_masks(self, requests: Sequence[GenerationRequest]) -> list[Any]:
        """With one adapter in the batch, run it on every row and zero its LoRA output on the base rows.

        peft's mixed batches (`adapter_names`) split every LoRA layer's input by adapter at each step, which
        costs more than the LoRA product itself on a small model; a 0/1 factor per row gives the same
        tokens (x + 0 is x). Returns the hooks to remove, or [] where that does not apply.
        """
        adapters = {r.adapter for r in requests} - {None}
        if len(adapters) != 1:
            return []
        (adapter,) = adapters
        internal = self._internal[adapter]
        layers = self._lora_layers()
        if not layers or not all(_plain_lora(layer, internal) for layer in layers):
            return []
        self._use(adapter)
        dtype = next(self.model.parameters()).dtype
        gate = [1.0 if r.adapter else 0.0 for r in requests]
        mask = torch.tensor(gate, dtype=dtype, device=self.model.device).view(-1, 1, 1)
        return [layer.lora_B[internal].register_forward_hook(lambda _m, _i, out: out * mask) for layer in layers]

    def _prefill_alone(self, request: GenerationRequest) -> float:
        ids = self.tokenizer(self.render_prompt(request.messages), return_tensors="pt", add_special_tokens=False)
        started = time.perf_counter()
        self._use(request.adapter)
        self.model(input_ids=ids["input_ids"].to(self.model.device), use_cache=False, logits_to_keep=1)
        return time.perf_counter() - started

    def _row_result(
        self,
        row: _Row,
        progress: RowProgress,
        prompt_tokens: int,
        prefill_s: float,
        latency_s: float,
        timing: str,
        batch_rows: int,
    ) -> GenerationResult:
        produced = len(progress.token_ids) + (1 if progress.finish_reason == "stop" else 0)
        decode_s = latency_s - prefill_s
        return GenerationResult(
            text=self.tokenizer.decode(progress.token_ids, skip_special_tokens=True).strip(),
            adapter=row.request.adapter,
            prompt_tokens=prompt_tokens,
            completion_tokens=produced,
            prefill_s=prefill_s,
            ttft_s=prefill_s,
            latency_s=latency_s,
            tokens_per_s=(produced - 1) / decode_s if produced > 1 and decode_s > 0 else 0.0,
            finish_reason=progress.finish_reason,
            timing=timing,
            batch_rows=batch_rows,
        )

    # -- choosing a strategy by measurement -----------------------------------------------------

    def calibrate(self, context: Sequence[dict[str, str]], question: Sequence[dict[str, str]], tokens: int = 64) -> str:
        """Time a RAG-like and a fine-tuned-like arm side by side both ways; keep the faster strategy.

        Greedy outputs are token-identical either way (tested), so this only changes speed. Without an
        adapter there is no mixed batch to weigh, and the engine keeps `interleaved`.
        """
        settings = DecodingSettings(max_new_tokens=tokens, min_new_tokens=tokens)
        self._choose_threads([GenerationRequest(context, None)], settings)
        adapter = next(iter(self._adapters), None)
        if adapter is None:
            return self.strategy
        requests = [GenerationRequest(context, None), GenerationRequest(question, adapter)]
        timings = self._fastest({name: lambda n=name: self.generate(requests, settings, n) for name in _CANDIDATES})
        self.calibration.update({f"{k}_s": v for k, v in timings.items()})
        self.strategy = min(timings, key=timings.__getitem__)
        return self.strategy

    @staticmethod
    def _fastest(candidates: dict[Any, Callable[[], object]], repeats: int = 2) -> dict[Any, float]:
        """Each candidate's best time over `repeats` runs after a warm-up, the candidates taking turns so a
        busy machine slows them alike."""
        best = {key: float("inf") for key in candidates}
        for round_ in range(repeats + 1):
            for key, run in candidates.items():
                started = time.perf_counter()
                run()
                if round_:  # round 0 warms up
                    best[key] = min(best[key], time.perf_counter() - started)
        return {key: round(value, 4) for key, value in best.items()}

    def _choose_threads(self, requests: list[GenerationRequest], settings: DecodingSettings) -> None:
        """Decoding one row of a small model is a chain of tiny matrix products, where waking a second CPU
        thread for each costs more than it saves; a large model wants them all. Measure, keep the faster.
        The count is per thread (OpenMP), so only the worker is affected, not the embedder or the page."""
        if self.model.device.type != "cpu":
            return
        default = self._worker.call(torch.get_num_threads)

        def run_with(threads: int) -> None:
            self._worker.call(lambda: torch.set_num_threads(threads))
            self.generate(requests, settings, "interleaved")

        timings = self._fastest({n: lambda n=n: run_with(n) for n in sorted({1, default})})
        self.threads = min(timings, key=timings.__getitem__)
        self._worker.call(lambda: torch.set_num_threads(self.threads))
        self.calibration.update({f"threads_{k}_s": round(v, 4) for k, v in timings.items()})


def _plain_lora(layer: Any, internal: str) -> bool:
    """A LoRA layer whose adapter output is `lora_B(...) * scaling` on a 3-d activation (no DoRA, no
    embedding or convolution variant), so scaling lora_B's output per row gates the adapter per row."""
    lora_b = getattr(layer, "lora_B", None)
    use_dora = getattr(layer, "use_dora", {}).get(internal, False)
    return lora_b is not None and internal in lora_b and isinstance(lora_b[internal], torch.nn.Linear) and not use_dora


class _Cancelled(StoppingCriteria):
    """Ends the rows whose stream was closed (one flag per row); the other rows decode on."""

    def __init__(self, flags: list[threading.Event]) -> None:
        self.flags = flags

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return torch.tensor([flag.is_set() for flag in self.flags], dtype=torch.bool, device=input_ids.device)


_CANDIDATES = ("interleaved", "batched")  # what `calibrate` weighs; sequential is for exact figures on request

# How arms run side by side: a new strategy is one method and one entry here.
SIDE_BY_SIDE: dict[str, Callable[[Engine, _Job], None]] = {
    "interleaved": Engine._run_interleaved,
    "sequential": Engine._run_sequential,
    "batched": Engine._run_batched,
}

# What the page says about the figures each strategy produces.
TIMING_NOTES = {
    "interleaved": (
        "Each approach ran alone (its own cache, batch of one), the approaches taking turns step by step: "
        "its figures count only its own retrieval, prefill and decoding steps, as if it were served alone."
    ),
    "sequential": (
        "Each approach ran alone, one after another: its figures are its own retrieval plus its own "
        "prefill and decoding, measured with nothing else running."
    ),
    "batched": (
        "The answers were decoded in one batch: each approach's retrieval and prefill were timed alone; "
        "its decoding steps were shared with the other panes."
    ),
    "micro-batched": (
        "Other people's questions reached the model while it was answering, so this one joined their next batch: "
        "each approach's time to first token and total time run from when the question reached the model (its "
        "wait for the batch included) plus its retrieval; prefill and decoding steps were shared with every row "
        "of the batch."
    ),
}
