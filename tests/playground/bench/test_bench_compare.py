"""`python -m playground bench compare --json`: every figure is there and the ratios add up; speed is for the bench."""

from __future__ import annotations

import pytest

from adapters.engine import SIDE_BY_SIDE
from playground.bench.compare import run_compare_bench

TOKENS = 4
ARMS = {"rag", "finetuned", "hybrid"}
TARGETS = {"side_by_side": 1.3, "three_way": 1.5, "memory": 1.15, "tokens_per_s": 0.9}
KEYS = {
    *(f"{prefix}_{name}" for name in TARGETS for prefix in ("ratio", "target_ratio", "meets_target")),
    "strategy",
    "calibration",
    "ratios_by_strategy",
    "single_s",
    "side_by_side_s",
    "raw_generate_s",
    "engine_decode_tokens_per_s",
    "raw_decode_tokens_per_s",
    "raw_prefill_s",
    "engine_prefill_s",
    "raw_matches_engine",
    "completion_tokens",
    "prompt_tokens",
    "rss_mib",
    "round_seconds",
    "rounds",
    "max_new_tokens",
    "question",
    "model",
}


@pytest.fixture(scope="module")
def report(runtime) -> dict:
    return run_compare_bench(rounds=1, max_new_tokens=TOKENS, runtime=runtime)


def test_every_figure_is_there(report: dict, runtime) -> None:
    assert set(report) == KEYS
    assert report["rounds"] == 1 and report["max_new_tokens"] == TOKENS
    assert report["strategy"] == runtime.engine.strategy and report["strategy"] in SIDE_BY_SIDE
    assert {"interleaved", "batched"} <= set(report["side_by_side_s"]) == set(report["ratios_by_strategy"])
    assert set(report["single_s"]) == set(report["prompt_tokens"]) == ARMS
    assert report["completion_tokens"] == {**dict.fromkeys(ARMS, TOKENS), "raw_generate": TOKENS}
    assert report["prompt_tokens"]["rag"] == report["prompt_tokens"]["hybrid"] > report["prompt_tokens"]["finetuned"]
    assert all(len(seconds) == 1 and seconds[0] > 0 for seconds in report["round_seconds"].values())
    model = report["model"]
    assert model["parameters"] > 0 and model["adapter_parameters"] > 0 and model["torch_threads"] >= 1
    assert model["adapter"] == runtime.model.adapter and model["device"]
    assert report["raw_matches_engine"], "greedy raw generate and the engine's RAG arm gave different answers"


def test_ratios_are_the_quotients_of_the_figures_they_name(report: dict) -> None:
    single = report["single_s"]
    for strategy, together in report["side_by_side_s"].items():
        ratios = report["ratios_by_strategy"][strategy]
        pair = together["rag+finetuned"] / max(single["rag"], single["finetuned"])
        assert ratios["side_by_side"] == pytest.approx(pair, rel=0.01)
        assert ratios["three_way"] == pytest.approx(together["rag+finetuned+hybrid"] / max(single.values()), rel=0.01)
    chosen = report["ratios_by_strategy"][report["strategy"]]
    assert report["ratio_side_by_side"] == pytest.approx(chosen["side_by_side"], rel=0.01)
    assert report["ratio_three_way"] == pytest.approx(chosen["three_way"], rel=0.01)
    rates = report["engine_decode_tokens_per_s"] / report["raw_decode_tokens_per_s"]
    assert report["ratio_tokens_per_s"] == pytest.approx(rates, rel=0.01)
    rss = report["rss_mib"]
    assert report["ratio_memory"] == pytest.approx(rss["peak_side_by_side"] / rss["loaded"], rel=0.01)
    for name, target in TARGETS.items():
        ratio = report[f"ratio_{name}"]
        assert report[f"target_ratio_{name}"] == target
        meets = ratio >= target if name == "tokens_per_s" else ratio <= target
        assert report[f"meets_target_{name}"] == meets


def test_memory_figures_are_positive(report: dict) -> None:
    rss = report["rss_mib"]
    assert 0 < rss["loaded"] <= rss["peak_side_by_side"]
    assert rss["peak_single"] > 0
    assert report["engine_decode_tokens_per_s"] > 0 and report["raw_decode_tokens_per_s"] > 0


def test_rounds_and_tokens_are_checked(runtime) -> None:
    with pytest.raises(ValueError, match="rounds"):
        run_compare_bench(rounds=0, runtime=runtime)
    with pytest.raises(ValueError, match="tokens"):
        run_compare_bench(max_new_tokens=1, runtime=runtime)
