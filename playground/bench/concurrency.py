"""Many users, one model: the engine's micro-batching against serving the same users one at a time, in one run.

`python -m playground bench compare --concurrency 1,4,16 --json` starts the page's model, then for each level N
has N users ask at once (threads released together), each one comparison of the page's four arms (base, RAG,
fine-tuned, hybrid) with greedy decoding and exactly `--tokens` new tokens per arm, twice per round:
- `one_at_a_time`: the engine's batch limit set to one row's job, so each comparison runs alone, the others
  queueing behind it (how the engine served several users before micro-batching);
- `micro_batched`: the configured limit (`PLAYGROUND_BATCH_ROWS`), so comparisons waiting behind a busy model
  join its next batch.
Throughput is every user's completion tokens over the wall time from the release to the last answer; each
user's latency runs from its release to its last arm's answer. The two ways take turns, in an order that
flips each round, after one untimed warm-up round; the figures are the rounds' medians. Greedy answers must
be the same both ways (checked).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.engine import DecodingSettings, GenerationRequest, GenerationResult
from adapters.errors import UserError
from pipelines.prompts import plain_messages
from playground.bench.compare import rag_prompt
from playground.runtime import Runtime

DEFAULT_LEVELS = (1, 4, 16)
DEFAULT_TOKENS = 32
MAX_USERS = 64
TARGET_AT_16 = 1.5  # micro-batched throughput / one at a time, at 16 users; at least (a goal, not a test)
QUESTIONS = (
    "How much does the Summit 2 tent cost?",
    "What does the warranty cover?",
    "How much does the Glacier 15 sleeping bag weigh?",
    "How long do I have to return boots?",
)
MODES = ("one_at_a_time", "micro_batched")


def parse_levels(text: str) -> tuple[int, ...]:
    """`1,4,16` → (1, 4, 16); a user's typo is one line that names it."""
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--concurrency takes user counts separated by commas (e.g. 1,4,16), got {text!r}") from None
    if not levels or any(not 1 <= level <= MAX_USERS for level in levels):
        raise UserError(f"--concurrency: each user count must be between 1 and {MAX_USERS}, got {text!r}")
    return tuple(dict.fromkeys(levels))


def user_requests(runtime: Runtime, count: int) -> list[list[GenerationRequest]]:
    """`count` users' comparisons, the sample questions in turn: the page's four arms each."""
    adapter = runtime.model.adapter
    if adapter is None:
        raise UserError(f"no LoRA adapter is loaded for {runtime.model.base}: the fine-tuned arm cannot run")
    prompts = {question: rag_prompt(runtime, question) for question in QUESTIONS}
    users = []
    for index in range(count):
        question = QUESTIONS[index % len(QUESTIONS)]
        plain, context = plain_messages(question), prompts[question]
        users.append(
            [
                GenerationRequest(plain, None),
                GenerationRequest(context, None),
                GenerationRequest(plain, adapter),
                GenerationRequest(context, adapter),
            ]
        )
    return users


@dataclass
class _Run:
    wall_s: float
    latencies: list[float]
    answers: list[list[GenerationResult]]

    @property
    def tokens(self) -> int:
        return sum(result.completion_tokens for answers in self.answers for result in answers)


@dataclass
class _Figures:
    runs: dict[tuple[int, str], list[_Run]] = field(default_factory=dict)

    def median(self, level: int, mode: str, figure: str) -> float:
        runs = self.runs[(level, mode)]
        if figure == "tokens_per_s":
            return statistics.median(run.tokens / run.wall_s for run in runs)
        if figure == "user_latency_s":
            return statistics.median(statistics.median(run.latencies) for run in runs)
        return statistics.median(run.wall_s for run in runs)


def _serve(runtime: Runtime, users: list[list[GenerationRequest]], settings: DecodingSettings, rows: int) -> _Run:
    """Every user asks at once; returns when the last answer is in."""
    engine = runtime.engine
    engine.batch_rows = rows
    release = threading.Barrier(len(users) + 1)
    answers: list[list[GenerationResult]] = [[] for _ in users]
    latencies = [0.0] * len(users)
    errors: list[BaseException] = []

    def ask(index: int) -> None:
        release.wait()
        started = time.perf_counter()
        try:
            answers[index] = engine.generate(users[index], settings)
        except BaseException as error:  # re-raised on the bench's thread
            errors.append(error)
        latencies[index] = time.perf_counter() - started

    threads = [threading.Thread(target=ask, args=(i,), name=f"bench-user-{i}") for i in range(len(users))]
    for thread in threads:
        thread.start()
    release.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return _Run(wall, latencies, answers)


def run_concurrency_bench(
    runtime: Runtime,
    levels: Sequence[int] = DEFAULT_LEVELS,
    rounds: int = 3,
    max_new_tokens: int = DEFAULT_TOKENS,
) -> dict[str, Any]:
    if rounds < 1 or max_new_tokens < 2:
        raise UserError("rounds must be at least 1 and tokens at least 2 (a decoding rate needs two tokens)")
    engine = runtime.engine
    configured = engine.batch_rows
    arms = 4
    if configured < 2 * arms:
        raise UserError(
            f"PLAYGROUND_BATCH_ROWS is {configured}: micro-batching needs room for two comparisons ({2 * arms} rows)"
        )
    users = user_requests(runtime, max(levels))
    settings = DecodingSettings(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, temperature=0.0)
    limits = {"one_at_a_time": arms, "micro_batched": configured}
    figures = _Figures({(level, mode): [] for level in levels for mode in MODES})
    try:
        for round_index in range(rounds + 1):
            for level in levels:
                order = MODES if round_index % 2 == 0 else MODES[::-1]
                for mode in order:
                    run = _serve(runtime, users[:level], settings, limits[mode])
                    if round_index:  # round 0 warms up
                        figures.runs[(level, mode)].append(run)
    finally:
        engine.batch_rows = configured
    return _report(runtime, figures, levels, rounds, max_new_tokens, configured)


def _same_answers(figures: _Figures, level: int) -> bool:
    alone, together = (figures.runs[(level, mode)][-1] for mode in MODES)
    return [[r.text for r in a] for a in alone.answers] == [[r.text for r in a] for a in together.answers]


def _report(
    runtime: Runtime, figures: _Figures, levels: Sequence[int], rounds: int, tokens: int, rows: int
) -> dict[str, Any]:
    by_level: dict[str, Any] = {}
    for level in levels:
        rates = {mode: figures.median(level, mode, "tokens_per_s") for mode in MODES}
        by_level[str(level)] = {
            "tokens_per_s": {mode: round(rate, 1) for mode, rate in rates.items()},
            "ratio": round(rates["micro_batched"] / rates["one_at_a_time"], 3),
            "wall_s": {mode: round(figures.median(level, mode, "wall_s"), 3) for mode in MODES},
            "median_user_latency_s": {mode: round(figures.median(level, mode, "user_latency_s"), 3) for mode in MODES},
            "same_answers": _same_answers(figures, level),
        }
    report: dict[str, Any] = {"concurrency": by_level}
    if "16" in by_level:
        ratio = by_level["16"]["ratio"]
        report.update(ratio_at_16=ratio, target_ratio_at_16=TARGET_AT_16, meets_target_at_16=ratio >= TARGET_AT_16)
    engine = runtime.engine
    report.update(
        batch_rows=rows,
        strategy_alone=engine.strategy,
        arms_per_user=4,
        max_new_tokens=tokens,
        rounds=rounds,
        method=(
            "users released together by a barrier; throughput = all completion tokens / wall time to the last "
            "answer; one_at_a_time limits a batch to one comparison; medians over the rounds after a warm-up"
        ),
        model={"name": engine.name, "source": runtime.model.source, "adapter": runtime.model.adapter},
    )
    return report
