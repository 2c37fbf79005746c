"""Side by side against one arm alone, and the engine's decoding loop against raw `generate`, in one run.

`python -m playground bench compare [--rounds 3] [--tokens 64] --json` loads the base model the page would load
(offline: the demo model with its LoRA adapter), builds the RAG prompt of a sample question with the real query
pipeline, and times, with greedy decoding and exactly `--tokens` new tokens per arm:
- each arm alone through the engine: RAG (base + chunks), fine-tuned (adapter, plain question), hybrid (both);
- RAG + fine-tuned, and RAG + fine-tuned + hybrid, side by side with each of the engine's strategies;
- raw `model.generate` on the RAG prompt (the same model object with its adapters off).

Every configuration runs once per round, in a rotation that starts one place later each round, after one
untimed warm-up round; the figures are the rounds' medians, since a burst of load on a shared machine slows
one run many times over. Resident memory is VmRSS, sampled from a background thread while each run goes on.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from adapters.engine import DecodingSettings, Engine, GenerationRequest, GenerationResult
from adapters.errors import UserError
from pipelines.prompts import plain_messages, to_dicts
from pipelines.rag import run_query
from pipelines.retrieval_modes import DEFAULT_MODE
from playground.config import Settings
from playground.runtime import Runtime

TARGET_SIDE_BY_SIDE = 1.3  # RAG + fine-tuned side by side / the slower of the two alone; at most
TARGET_THREE_WAY = 1.5  # RAG + fine-tuned + hybrid / the slowest of the three alone; at most
TARGET_MEMORY = 1.15  # peak RSS side by side / RSS with the model loaded; at most
TARGET_TOKENS_PER_S = 0.9  # the engine's decoding rate for one arm / raw generate's; at least
DEFAULT_ROUNDS = 3
DEFAULT_TOKENS = 64
QUESTION = "How much does the Summit 2 tent cost?"
STRATEGIES = ("interleaved", "batched")  # the two `Engine.calibrate` chooses between
SINGLE_STRATEGY = "interleaved"  # one arm alone: its own decoding loop, batch of one
RSS_INTERVAL_S = 0.005
PAIR = ("rag", "finetuned")
THREE = ("rag", "finetuned", "hybrid")


# -- resident memory ---------------------------------------------------------------------------------------------


def rss_mib() -> float:
    """The process's resident memory now (VmRSS), in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


class PeakRss:
    """The highest VmRSS seen while a block runs, sampled every `interval` seconds from a background thread.

    `ru_maxrss` would be simpler but is the peak over the process's whole life (model loading included)."""

    def __init__(self, interval: float = RSS_INTERVAL_S) -> None:
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakRss:
        self.peak = rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mib())


# -- raw generate ------------------------------------------------------------------------------------------------


class _TokenClock(BaseStreamer):
    """Stamps the first and the last generated token; `generate` hands the prompt to `put` first."""

    def __init__(self) -> None:
        self.calls = 0
        self.first = self.last = 0.0

    def put(self, value: torch.Tensor) -> None:
        now = time.perf_counter()
        self.calls += 1
        if self.calls == 2:
            self.first = now
        self.last = now

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class RawRun:
    wall_s: float
    prefill_s: float  # from the call to the first token
    tokens: int
    decode_tokens_per_s: float  # after the first token, as the engine counts it
    text: str


def raw_generate(engine: Engine, messages: list[dict[str, str]], tokens: int) -> RawRun:
    """Plain `model.generate` on the base model (adapters off), greedy, exactly `tokens` new tokens."""
    ids = engine.tokenizer(engine.render_prompt(messages), return_tensors="pt", add_special_tokens=False)
    ids = ids.to(engine.model.device)
    model = engine.model
    clock = _TokenClock()
    adapters_off = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    with adapters_off, torch.inference_mode():  # inference mode, as the engine runs: only the loop differs
        started = time.perf_counter()
        output = model.generate(
            **ids,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=engine.tokenizer.pad_token_id,
            eos_token_id=sorted(engine.eos_ids()),
            streamer=clock,
        )
        wall_s = time.perf_counter() - started
    new = output[0, ids["input_ids"].shape[1] :]
    decode_s = clock.last - clock.first
    rate = (len(new) - 1) / decode_s if len(new) > 1 and decode_s > 0 else 0.0
    text = engine.tokenizer.decode(new, skip_special_tokens=True).strip()
    return RawRun(wall_s, clock.first - started, len(new), rate, text)


# -- the configurations ------------------------------------------------------------------------------------------


@dataclass
class _Figures:
    """Every configuration's wall seconds per round, and what its runs reported."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, list[GenerationResult]] = field(default_factory=dict)
    raw: list[RawRun] = field(default_factory=list)
    peak_rss: dict[str, float] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])


def _side_by_side_name(arms: tuple[str, ...], strategy: str) -> str:
    return f"{'+'.join(arms)}:{strategy}"


def _configurations(
    engine: Engine, requests: dict[str, GenerationRequest], decoding: DecodingSettings, strategies: tuple[str, ...]
) -> dict[str, Callable[[], Any]]:
    """Name → one run; a name with a colon is a side-by-side run (arms:strategy)."""
    runs: dict[str, Callable[[], Any]] = {}
    for arm, request in requests.items():
        runs[arm] = lambda request=request: engine.generate([request], decoding, SINGLE_STRATEGY)
    for arms in (PAIR, THREE):
        for strategy in strategies:
            batch = [requests[arm] for arm in arms]
            runs[_side_by_side_name(arms, strategy)] = lambda b=batch, s=strategy: engine.generate(b, decoding, s)
    runs["raw_generate"] = lambda: raw_generate(engine, list(requests["rag"].messages), decoding.max_new_tokens)
    return runs


def _rotation(names: list[str], round_index: int) -> list[str]:
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def _run_rounds(runs: dict[str, Callable[[], Any]], rounds: int) -> _Figures:
    """One untimed warm-up round, then `rounds` timed ones; every run's resident memory peak is kept."""
    figures = _Figures({name: [] for name in runs}, {name: [] for name in runs})
    names = list(runs)
    for index in range(rounds + 1):
        for name in _rotation(names, index):
            with PeakRss() as memory:
                started = time.perf_counter()
                outcome = runs[name]()
                seconds = time.perf_counter() - started
            figures.peak_rss[name] = max(figures.peak_rss.get(name, 0.0), memory.peak)
            if index == 0:
                continue  # the warm-up round counts for memory only
            figures.seconds[name].append(seconds)
            if isinstance(outcome, RawRun):
                figures.raw.append(outcome)
            else:
                figures.results[name].append(outcome[0])
    return figures


# -- the report --------------------------------------------------------------------------------------------------


def _target(name: str, ratio: float, target: float, at_most: bool) -> dict[str, Any]:
    meets = ratio <= target if at_most else ratio >= target
    return {f"ratio_{name}": round(ratio, 3), f"target_ratio_{name}": target, f"meets_target_{name}": meets}


def _strategy_ratios(figures: _Figures, strategy: str) -> dict[str, float]:
    pair = figures.median(_side_by_side_name(PAIR, strategy)) / max(figures.median(arm) for arm in PAIR)
    three = figures.median(_side_by_side_name(THREE, strategy)) / max(figures.median(arm) for arm in THREE)
    return {"side_by_side": pair, "three_way": three}


def _parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(base, adapter) parameter counts; peft names every LoRA weight `lora_*`."""
    counts = [(p.numel(), "lora_" in name) for name, p in model.named_parameters()]
    adapter = sum(n for n, is_lora in counts if is_lora)
    return sum(n for n, _ in counts) - adapter, adapter


def _wall_times(figures: _Figures, strategies: tuple[str, ...]) -> dict[str, Any]:
    together = {
        strategy: {
            "+".join(arms): round(figures.median(_side_by_side_name(arms, strategy)), 4) for arms in (PAIR, THREE)
        }
        for strategy in strategies
    }
    return {
        "single_s": {arm: round(figures.median(arm), 4) for arm in THREE},
        "side_by_side_s": together,
        "raw_generate_s": round(figures.median("raw_generate"), 4),
        "round_seconds": {name: [round(s, 4) for s in values] for name, values in figures.seconds.items()},
    }


def _decoding(figures: _Figures) -> dict[str, Any]:
    """Raw generate's figures beside the RAG arm's alone (`interleaved`: its own decoding loop)."""
    engine, raw = figures.results["rag"], figures.raw
    return {
        "engine_decode_tokens_per_s": round(statistics.median(r.tokens_per_s for r in engine), 2),
        "raw_decode_tokens_per_s": round(statistics.median(r.decode_tokens_per_s for r in raw), 2),
        "engine_prefill_s": round(statistics.median(r.prefill_s for r in engine), 4),
        "raw_prefill_s": round(statistics.median(r.prefill_s for r in raw), 4),
        "raw_matches_engine": raw[-1].text == engine[-1].text,  # greedy: the same tokens either way
        "completion_tokens": {
            **{arm: figures.results[arm][-1].completion_tokens for arm in THREE},
            "raw_generate": raw[-1].tokens,
        },
        "prompt_tokens": {arm: figures.results[arm][-1].prompt_tokens for arm in THREE},
    }


def _memory(figures: _Figures, rss_loaded: float) -> dict[str, Any]:
    side_by_side = [peak for name, peak in figures.peak_rss.items() if ":" in name]
    return {
        "loaded": round(rss_loaded, 1),
        "peak_single": round(max(figures.peak_rss[arm] for arm in THREE), 1),
        "peak_side_by_side": round(max(side_by_side), 1),
        "method": f"VmRSS sampled every {RSS_INTERVAL_S * 1000:g} ms during each run, warm-up included",
    }


def _model(runtime: Runtime) -> dict[str, Any]:
    engine = runtime.engine
    base_params, adapter_params = _parameters(engine.model)
    return {
        "name": engine.name,
        "source": runtime.model.source,
        "adapter": runtime.model.adapter,
        "parameters": base_params,
        "adapter_parameters": adapter_params,
        "device": str(engine.model.device),
        "torch_threads": torch.get_num_threads(),
    }


def _report(
    runtime: Runtime, figures: _Figures, strategies: tuple[str, ...], rss_loaded: float, tokens: int
) -> dict[str, Any]:
    chosen = runtime.engine.strategy
    by_strategy = {strategy: _strategy_ratios(figures, strategy) for strategy in strategies}
    decoding, memory = _decoding(figures), _memory(figures, rss_loaded)
    rate = decoding["engine_decode_tokens_per_s"] / decoding["raw_decode_tokens_per_s"]
    return {
        **_target("side_by_side", by_strategy[chosen]["side_by_side"], TARGET_SIDE_BY_SIDE, at_most=True),
        **_target("three_way", by_strategy[chosen]["three_way"], TARGET_THREE_WAY, at_most=True),
        **_target("memory", memory["peak_side_by_side"] / memory["loaded"], TARGET_MEMORY, at_most=True),
        **_target("tokens_per_s", rate, TARGET_TOKENS_PER_S, at_most=False),
        "strategy": chosen,
        "calibration": dict(runtime.engine.calibration),
        "ratios_by_strategy": {s: {k: round(v, 3) for k, v in r.items()} for s, r in by_strategy.items()},
        **_wall_times(figures, strategies),
        **decoding,
        "rss_mib": memory,
        "rounds": len(figures.raw),
        "max_new_tokens": tokens,
        "question": QUESTION,
        "model": _model(runtime),
    }


# -- the bench ---------------------------------------------------------------------------------------------------


def rag_prompt(runtime: Runtime, question: str) -> list[dict[str, str]]:
    """The RAG prompt as the comparison service builds it: the query pipeline up to the prompt builder."""
    outputs = run_query(runtime.pipeline, question, top_k=runtime.settings.top_k, mode=DEFAULT_MODE)
    return to_dicts(outputs["prompt_builder"]["prompt"])


def _start(settings: Settings | None) -> Runtime:
    from playground.runtime import start

    return start(settings or Settings())


def run_compare_bench(
    rounds: int = DEFAULT_ROUNDS,
    max_new_tokens: int = DEFAULT_TOKENS,
    settings: Settings | None = None,
    runtime: Runtime | None = None,
) -> dict[str, Any]:
    """Side by side against each arm alone, and the engine's decoding against raw `generate`, on the page's model
    (`runtime`, or one started from `settings`, default: the environment's)."""
    if rounds < 1 or max_new_tokens < 2:
        raise UserError("rounds must be at least 1 and tokens at least 2 (a decoding rate needs two tokens)")
    runtime = runtime or _start(settings)
    adapter = runtime.model.adapter
    if adapter is None:
        raise UserError(f"no LoRA adapter is loaded for {runtime.model.base}: the fine-tuned arm cannot run")
    rss_loaded = rss_mib()  # one model loaded, nothing generated by the bench yet
    context, plain = rag_prompt(runtime, QUESTION), plain_messages(QUESTION)
    requests = {
        "rag": GenerationRequest(context, None),
        "finetuned": GenerationRequest(plain, adapter),
        "hybrid": GenerationRequest(context, adapter),
    }
    decoding = DecodingSettings(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, temperature=0.0)
    # The chosen strategy is measured even when it is neither of the two calibration weighs (set by hand).
    strategies = tuple(dict.fromkeys((*STRATEGIES, runtime.engine.strategy)))
    figures = _run_rounds(_configurations(runtime.engine, requests, decoding, strategies), rounds)
    return _report(runtime, figures, strategies, rss_loaded, max_new_tokens)
