"""Evaluation over a question set: every chosen arm answers every question, each answer is scored against the
reference, each question's retrieval against the file that holds its answer, and the summary gives every mean
with a bootstrap 95 % interval and every difference between arms with its own (paired) interval.

The arms run exactly as on the Compare tab (`CompareService`), so the latency figures are the same honest ones:
the arms that read retrieved chunks carry the retrieval time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

from playground.answer_scores import ANSWER_METRICS, Scored, retrieval_scores, score_answers
from playground.bootstrap import Interval, mean_interval, paired_difference
from playground.compare import ARMS, ROW_NAMES, CompareOptions, CompareService, Comparison
from playground.metrics import LABELS
from playground.questions import EvalItem, QuestionSet

QUALITY = tuple(ANSWER_METRICS)  # exact_match, f1, rouge_l, semantic_similarity, fact_hit
# Under this many questions no arm is called ahead, whatever its interval: a bootstrap over 2 to 4 questions has
# only a handful of distinct resamples, and its "95 %" interval can exclude zero by chance.
MIN_QUESTIONS = 5
RETRIEVAL = ("recall_at_k", "mrr")
COSTS = ("retrieval_s", "ttft_s", "latency_s", "prompt_tokens", "completion_tokens")
ROW_COLUMNS = (
    "question",
    "kind",
    "arm",
    "adapter",
    "answer",
    "reference",
    "fact",
    *QUALITY,
    *RETRIEVAL,
    *COSTS,
    "error",
)
SHORT = {"base": "Base", "rag": "RAG", "finetuned": "Fine-tuned", "hybrid": "Hybrid"}  # "Hybrid − RAG F1: +0.12 …"
METRIC_LABELS = {
    **{name: metric.label for name, metric in ANSWER_METRICS.items()},
    "recall_at_k": "recall@k",
    "mrr": "MRR",
    "retrieval_s": "retrieval (s)",
    "ttft_s": "time to first token (s)",
    "latency_s": "total (s)",
    "prompt_tokens": "prompt tokens",
    "completion_tokens": "completion tokens",
}


@dataclass
class Progress:
    """After each question: how far the run is, and its rows so far."""

    done: int
    total: int
    elapsed_s: float
    rows: list[dict[str, Any]]

    @property
    def eta_s(self) -> float | None:
        return self.elapsed_s / self.done * (self.total - self.done) if self.done else None

    @property
    def text(self) -> str:
        eta = self.eta_s
        left = "" if eta is None or self.done == self.total else f", about {_duration(eta)} left"
        return f"{self.done}/{self.total} questions, {_duration(self.elapsed_s)} so far{left}"


@dataclass
class EvalReport:
    settings: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    run_id: str = ""  # set once stored (playground.eval_history)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, with_rows: bool = True) -> dict[str, Any]:
        return {"run_id": self.run_id, **self.summary, "settings": self.settings} | (
            {"rows": self.rows} if with_rows else {}
        )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _source_name(source: str) -> str:
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def question_rows(item: EvalItem, state: Comparison, embedder_model: str | None) -> list[dict[str, Any]]:
    """One row per arm for one answered question, scored."""
    retrieved = [_source_name(chunk["source"]) for chunk in state.chunks]
    reads = any(ARMS[arm][1] for arm in state.rows)
    recall, mrr = (
        retrieval_scores(retrieved, item.source, int(state.retrieval["top_k"]))
        if item.source and reads
        else (None, None)
    )
    texts = {arm: (state.answers.get(arm) or {}).get("text", "") for arm in state.rows}
    scores = score_answers([Scored(texts[arm], item.reference, item.fact) for arm in state.rows], embedder_model)
    rows = []
    for index, arm in enumerate(state.rows):
        answer = state.answers.get(arm)
        error = state.errors.get(arm, "" if answer else "no answer")
        row: dict[str, Any] = {
            "question": item.question,
            "kind": item.kind,
            "arm": arm,
            "adapter": state.adapters.get(arm) or "",
            "answer": texts[arm],
            "reference": item.reference,
            "fact": item.fact or "",
        }
        for metric in QUALITY:
            row[metric] = None if error else scores[metric][index]
        # Retrieval belongs to the arms that read what it found.
        row["recall_at_k"], row["mrr"] = (recall, mrr) if ARMS[arm][1] and not error else (None, None)
        for cost in COSTS:
            row[cost] = answer[cost] if answer else None
        row["error"] = error
        rows.append(row)
    return rows


def run(
    service: CompareService,
    questions: QuestionSet,
    options: CompareOptions = CompareOptions(),
    embedder_model: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[Progress | EvalReport]:
    """Yields a `Progress` after every question, then the `EvalReport` (of the questions answered, when stopped)."""
    arms = tuple(arm for arm in ROW_NAMES if arm in options.arms)
    options = replace(options, arms=arms)
    service.check("-", options)  # bad options are refused before the first question
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    last: Comparison | None = None
    for done, item in enumerate(questions.items, start=1):
        if should_stop():
            break
        last = service.compare(item.question, options)
        rows += question_rows(item, last, embedder_model)
        yield Progress(done, len(questions.items), time.perf_counter() - started, rows)
    settings = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "questions": {"name": questions.name, "sha256": questions.sha256, "count": len(questions.items)},
        "answered": len({row["question"] for row in rows}) if rows else 0,
        "arms": list(arms),
        "model": {"base": service.runtime.model.base, "source": service.runtime.model.source},
        "adapter": (last.model.adapter if last else None) if any(ARMS[a][0] for a in arms) else None,
        "retrieval": dict(last.retrieval) if last else {},
        "private_documents": options.workspace is not None,
        "decoding": dict(last.decoding) if last else {},
        "timing": last.timing if last else "",
        "embedder": service.runtime.embedder.name,
    }
    summary = summarize(rows, arms)
    summary["top_k"] = settings["retrieval"].get("top_k") if any(ARMS[arm][1] for arm in arms) else None
    yield EvalReport(settings, rows, summary)


def _interval_json(interval: Interval | None) -> dict[str, Any] | None:
    if interval is None:
        return None
    return {"mean": interval.mean, "low": interval.low, "high": interval.high, "n": interval.n}


def _by_question(rows: Sequence[dict[str, Any]], arm: str, metric: str) -> dict[str, Any]:
    return {row["question"]: row[metric] for row in rows if row["arm"] == arm}


def summarize(rows: Sequence[dict[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    """Per arm, every metric's mean with its bootstrap interval; per pair of arms, the paired difference of each
    quality metric; retrieval once per question; and the fact hit rate per arm and kind."""
    questions = list(dict.fromkeys(row["question"] for row in rows))
    per_arm = {
        arm: {
            metric: _interval_json(mean_interval([row[metric] for row in rows if row["arm"] == arm]))
            for metric in (*QUALITY, *COSTS)
        }
        for arm in arms
    }
    differences = []
    for first, second in combinations(arms, 2):  # pane order: the later arm minus the earlier one
        for metric in QUALITY:
            a, b = _by_question(rows, second, metric), _by_question(rows, first, metric)
            interval = paired_difference([a.get(q) for q in questions], [b.get(q) for q in questions])
            if interval is None:
                continue
            text = f"{SHORT[second]} − {SHORT[first]} {METRIC_LABELS[metric]}: {interval.text(signed=True)}"
            differences.append(
                {"arm": second, "minus": first, "metric": metric, **_interval_json(interval), "text": text}
            )
    reader = next((arm for arm in arms if ARMS[arm][1]), None)
    retrieval = {
        metric: _interval_json(mean_interval(list(_by_question(rows, reader, metric).values()))) if reader else None
        for metric in RETRIEVAL
    }
    kinds = sorted({row["kind"] for row in rows if row["kind"]})

    def hit_rate(subset: Sequence[dict[str, Any]], arm: str) -> float | None:
        values = [row["fact_hit"] for row in subset if row["arm"] == arm and row["fact_hit"] is not None]
        return round(sum(values) / len(values), 3) if values else None

    return {
        "questions": len(questions),
        "arms": list(arms),
        "metrics": per_arm,
        "differences": differences,
        "retrieval": retrieval,
        "fact_hit_rate": {arm: hit_rate(rows, arm) for arm in arms},
        "by_kind": {
            kind: {arm: hit_rate([r for r in rows if r["kind"] == kind], arm) for arm in arms} for kind in kinds
        },
        "errors": sum(1 for row in rows if row["error"]),
        "caution": too_few(len(questions)),
        "findings": findings(per_arm, differences, arms, len(questions)),
    }


def too_few(questions: int) -> str:
    """Why no lead is claimed on this many questions ("" when there are enough)."""
    if questions >= MIN_QUESTIONS:
        return ""
    return (
        f"Only {questions} question{'s' if questions != 1 else ''}: too few to tell arms apart (no lead is claimed "
        f"under {MIN_QUESTIONS}; a bootstrap over so few has only a handful of distinct resamples)."
    )


def is_lead(low: float, questions: int) -> bool:
    """Whether a difference's lower bound, rounded as shown, is a lead worth stating on this many questions."""
    return round(low, 2) > 0 and questions >= MIN_QUESTIONS


def findings(
    per_arm: dict[str, Any], differences: Sequence[dict[str, Any]], arms: Sequence[str], questions: int
) -> list[str]:
    """Plain sentences: per quality metric, which arm scored highest and whether its lead is more than noise."""
    caution = too_few(questions)
    sentences = [caution] if caution else []
    for metric in QUALITY:
        means = {arm: per_arm[arm][metric]["mean"] for arm in arms if per_arm[arm][metric]}
        if len(means) < 2:
            continue
        ranked = sorted(means, key=means.__getitem__, reverse=True)
        best, runner_up = ranked[0], ranked[1]
        pair = next(
            (d for d in differences if d["metric"] == metric and {d["arm"], d["minus"]} == {best, runner_up}), None
        )
        if pair is None:
            continue
        sign = 1 if pair["arm"] == best else -1
        # Rounded first (+ 0.0 turns -0.0 into 0.0): an interval shown as [-0.00, 0.00] would read as a lead.
        low, high = sorted((round(sign * pair["low"], 2) + 0.0, round(sign * pair["high"], 2) + 0.0))
        label = METRIC_LABELS[metric]
        if low > 0 and questions < MIN_QUESTIONS:
            sentences.append(
                f"On {label}, {LABELS[best]} scored highest ({means[best]:.2f}), {sign * pair['mean']:+.2f} "
                f"[{low:+.2f}, {high:+.2f}] against {LABELS[runner_up]}: not a lead on {questions} questions."
            )
        elif low > 0:
            sentences.append(
                f"On {label}, {LABELS[best]} scored highest ({means[best]:.2f}), ahead of {LABELS[runner_up]} by "
                f"{sign * pair['mean']:+.2f} [{low:+.2f}, {high:+.2f}]; the 95 % interval excludes zero."
            )
        else:
            sentences.append(
                f"On {label}, {LABELS[best]} ({means[best]:.2f}) and {LABELS[runner_up]} ({means[runner_up]:.2f}) "
                f"are not told apart by these questions: the difference's interval [{low:+.2f}, {high:+.2f}] "
                "includes zero."
            )
    return sentences
