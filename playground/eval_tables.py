"""Tables of an evaluation's summary and rows, as the page and the terminal show them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from playground.bootstrap import Interval
from playground.evaluate import COSTS, METRIC_LABELS, MIN_QUESTIONS, QUALITY, RETRIEVAL
from playground.metrics import NAMES


def interval_text(found: dict[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    """'0.62 [0.51, 0.73]' ('+0.12 [0.05, 0.19]' for a difference); '–' when nothing was scored."""
    if not found:
        return "–"
    return Interval(found["mean"], found["low"], found["high"], found["n"]).text(signed=signed, digits=digits)


ARM_HEADERS = ["arm", *(METRIC_LABELS[m] for m in (*QUALITY, *COSTS))]


def arm_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per arm: every metric's mean and 95 % interval (seconds with 2 digits, tokens with none)."""
    rows = []
    for arm in summary["arms"]:
        found = summary["metrics"][arm]
        cells = [interval_text(found[m]) for m in QUALITY]
        cells += [interval_text(found[m], digits=0 if m.endswith("tokens") else 2) for m in COSTS]
        rows.append([NAMES.get(arm, arm), *cells])
    return rows


DIFFERENCE_HEADERS = ["difference", "metric", "mean [95 % interval]", "reading"]


def difference_rows(summary: dict[str, Any], metrics: Sequence[str] = QUALITY) -> list[list[str]]:
    rows = []
    for found in summary["differences"]:
        if found["metric"] not in metrics:
            continue
        low, high = round(found["low"], 2), round(found["high"], 2)  # as shown
        if (low > 0 or high < 0) and summary["questions"] < MIN_QUESTIONS:
            reading = f"too few questions to tell (under {MIN_QUESTIONS})"
        elif low > 0 or high < 0:
            reading = f"{NAMES[found['arm'] if low > 0 else found['minus']]} is ahead"
        else:
            reading = "not told apart (the interval includes 0)"
        rows.append(
            [
                f"{NAMES[found['arm']]} − {NAMES[found['minus']]}",
                METRIC_LABELS[found["metric"]],
                interval_text(found, signed=True),
                reading,
            ]
        )
    return rows


RETRIEVAL_HEADERS = [METRIC_LABELS[m] for m in RETRIEVAL]


def retrieval_text(summary: dict[str, Any]) -> str:
    parts = [
        f"{METRIC_LABELS[m]} {interval_text(summary['retrieval'][m])}" for m in RETRIEVAL if summary["retrieval"][m]
    ]
    if not parts:
        return "Retrieval was not scored: no arm read retrieved chunks, or the questions name no `source` file."
    k = summary.get("top_k")
    at = f" (k = {k})" if k else ""
    return f"Retrieval{at}, scored against each question's `source` file: " + "; ".join(parts) + "."


LIVE_HEADERS = ["question", "arm", "answer", "F1", "fact", "total (s)"]


def live_rows(rows: Sequence[dict[str, Any]], last: int = 40) -> list[list[Any]]:
    """The latest rows while a run goes on, newest first."""
    shown = []
    for row in list(rows)[-last:][::-1]:
        fact = "" if row["fact_hit"] is None else ("yes" if row["fact_hit"] else "no")
        f1 = "" if row["f1"] is None else round(row["f1"], 2)
        latency = "" if row["latency_s"] is None else round(row["latency_s"], 2)
        shown.append(
            [row["question"], NAMES.get(row["arm"], row["arm"]), row["error"] or row["answer"], f1, fact, latency]
        )
    return shown


HISTORY_HEADERS = ["run", "started (UTC)", "questions", "count", "arms", "adapter", "fact hit rate"]


def history_rows(runs: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            run["run_id"],
            run["started_at"],
            run["questions"],
            run["count"],
            run["arms"],
            run["adapter"],
            ", ".join(f"{arm} {rate:.0%}" for arm, rate in run["fact_hit_rate"].items() if rate is not None),
        ]
        for run in runs
    ]
