"""Charts of an evaluation's summary (Altair, which `gr.Plot` draws): every bar or point with its 95 % interval."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from playground.evaluate import METRIC_LABELS, QUALITY
from playground.metrics import NAMES

ORDER = list(NAMES.values())


def _frame(summary: dict[str, Any], metrics: tuple[str, ...]) -> pd.DataFrame:
    records = [
        {
            "arm": NAMES.get(arm, arm),
            "metric": METRIC_LABELS[metric],
            "mean": found["mean"],
            "low": found["low"],
            "high": found["high"],
            "n": found["n"],
        }
        for arm in summary["arms"]
        for metric in metrics
        if (found := summary["metrics"][arm][metric])
    ]
    return pd.DataFrame.from_records(records, columns=["arm", "metric", "mean", "low", "high", "n"])


def _bars_with_intervals(y_title: str) -> alt.LayerChart:
    """Bars and interval lines without data of their own: the facet gives each panel its metric's rows (layers
    that carried the whole frame would draw every metric in every panel)."""
    base = alt.Chart()
    x = alt.X("arm:N", sort=ORDER, title=None)
    bars = base.mark_bar().encode(
        x=x,
        y=alt.Y("mean:Q", title=y_title),
        color=alt.Color("arm:N", sort=ORDER, legend=None),
        tooltip=["arm", "metric", alt.Tooltip("mean:Q", format=".3f"), "low", "high", "n"],
    )
    rules = base.mark_rule(strokeWidth=2).encode(x=x, y="low:Q", y2="high:Q")
    return (bars + rules).properties(width=130, height=220)


def quality_chart(summary: dict[str, Any]) -> alt.FacetChart:
    """Each quality metric per arm: mean and its 95 % bootstrap interval."""
    frame = _frame(summary, QUALITY)
    return (
        _bars_with_intervals("mean (0–1)")
        .facet(column=alt.Column("metric:N", sort=[METRIC_LABELS[m] for m in QUALITY], title=None), data=frame)
        .properties(title="Quality per arm (bars: mean; lines: 95 % bootstrap interval)")
    )


def latency_chart(summary: dict[str, Any]) -> alt.FacetChart:
    """Time to first token and total time per arm (both include retrieval for the arms that read chunks)."""
    metrics = ("ttft_s", "latency_s")
    frame = _frame(summary, metrics)
    return (
        _bars_with_intervals("seconds")
        .facet(column=alt.Column("metric:N", sort=[METRIC_LABELS[m] for m in metrics], title=None), data=frame)
        # Lines, not one long title: two narrow facets would cut its start off.
        .properties(title=["Latency per arm", "retrieval included for RAG and hybrid", "lines: 95 % intervals"])
    )


def tradeoff_chart(summary: dict[str, Any], metric: str = "f1") -> alt.LayerChart:
    """Quality against total time: up and to the left is better."""
    quality, latency = _frame(summary, (metric,)), _frame(summary, ("latency_s",))
    frame = quality.merge(latency, on="arm", suffixes=("_q", "_t"))
    base = alt.Chart(frame)
    points = base.mark_circle(size=120).encode(
        x=alt.X("mean_t:Q", title="total time per answer (s)"),
        y=alt.Y("mean_q:Q", title=f"{METRIC_LABELS[metric]} (mean)", axis=alt.Axis(format=".2f")),
        color=alt.Color("arm:N", sort=ORDER),
        tooltip=["arm", alt.Tooltip("mean_q:Q", format=".3f"), alt.Tooltip("mean_t:Q", format=".2f")],
    )
    vertical = base.mark_rule().encode(x="mean_t:Q", y="low_q:Q", y2="high_q:Q", color=alt.Color("arm:N", sort=ORDER))
    horizontal = base.mark_rule().encode(y="mean_q:Q", x="low_t:Q", x2="high_t:Q", color=alt.Color("arm:N", sort=ORDER))
    return (points + vertical + horizontal).properties(
        title=[f"{METRIC_LABELS[metric]} against total time", "lines: 95 % intervals"], width=300, height=240
    )
