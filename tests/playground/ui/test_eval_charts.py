"""The Evaluate tab's charts: each panel draws its own metric's means and intervals."""

from __future__ import annotations

from playground.evaluate import QUALITY
from playground.ui.eval_charts import latency_chart, quality_chart, tradeoff_chart


def _summary() -> dict:
    def found(mean: float) -> dict:
        return {"mean": mean, "low": mean - 0.1, "high": mean + 0.1, "n": 5}

    metrics = {
        arm: {
            **{metric: found(0.1 * index + 0.01 * offset) for index, metric in enumerate(QUALITY)},
            "ttft_s": found(0.2 + offset),
            "latency_s": found(1.0 + offset),
        }
        for offset, arm in enumerate(("base", "rag"))
    }
    return {"arms": ["base", "rag"], "metrics": metrics}


def test_every_panel_gets_only_its_metric():
    spec = quality_chart(_summary()).to_dict()
    assert "data" not in spec["spec"]["layer"][0] and "data" not in spec["spec"]["layer"][1]  # the facet's rows
    rows = next(iter(spec["datasets"].values()))
    assert len(rows) == 2 * len(QUALITY)
    exact = [r for r in rows if r["metric"] == "Exact match"]
    assert sorted(r["mean"] for r in exact) == [0.0, 0.01]
    assert spec["facet"]["column"]["field"] == "metric"


def test_latency_and_tradeoff_charts_carry_the_figures():
    latency = latency_chart(_summary()).to_dict()
    rows = next(iter(latency["datasets"].values()))
    assert {(r["arm"], r["metric"], r["mean"]) for r in rows} >= {("RAG", "total (s)", 2.0)}
    tradeoff = tradeoff_chart(_summary()).to_dict()
    points = next(iter(tradeoff["datasets"].values()))
    assert {(p["arm"], p["mean_t"]) for p in points} == {("Base (control)", 1.0), ("RAG", 2.0)}


def test_narrow_charts_have_titles_in_short_lines():
    """The latency chart (two narrow panels) and the trade-off chart cut the start off a long one-line title."""
    for chart in (latency_chart(_summary()), tradeoff_chart(_summary())):
        title = chart.to_dict()["title"]
        assert isinstance(title, list) and all(len(line) <= 40 for line in title), title
    assert "retrieval included for RAG and hybrid" in latency_chart(_summary()).to_dict()["title"]
