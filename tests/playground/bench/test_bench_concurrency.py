"""`python -m playground bench compare --concurrency`: throughput of micro-batching against one at a time, from the
same users in the same run, with the same answers both ways; speed itself is for the bench."""

from __future__ import annotations

import pytest

from adapters.errors import UserError
from playground.bench.concurrency import MODES, parse_levels, run_concurrency_bench

TOKENS = 4


@pytest.fixture(scope="module")
def report(runtime) -> dict:
    return run_concurrency_bench(runtime, levels=(1, 3), rounds=1, max_new_tokens=TOKENS)


def test_each_level_has_both_ways_and_their_ratio(report: dict) -> None:
    assert set(report["concurrency"]) == {"1", "3"}
    for level in report["concurrency"].values():
        rates = level["tokens_per_s"]
        assert set(rates) == set(MODES) and all(rate > 0 for rate in rates.values())
        assert level["ratio"] == pytest.approx(rates["micro_batched"] / rates["one_at_a_time"], rel=0.01)
        assert level["same_answers"], "greedy answers changed when the users shared a batch"
        assert all(level["median_user_latency_s"][mode] <= level["wall_s"][mode] + 1e-6 for mode in MODES)
    assert report["arms_per_user"] == 4 and report["max_new_tokens"] == TOKENS and report["rounds"] == 1
    assert "ratio_at_16" not in report  # no 16-user level was run


def test_throughput_counts_every_users_tokens(report: dict) -> None:
    """Three users × four arms × TOKENS new tokens in `wall_s`: the rate is that quotient."""
    level = report["concurrency"]["3"]
    for mode in MODES:
        assert level["tokens_per_s"][mode] == pytest.approx(3 * 4 * TOKENS / level["wall_s"][mode], rel=0.02)


def test_the_engines_batch_limit_is_restored(report: dict, runtime) -> None:
    assert runtime.engine.batch_rows == report["batch_rows"]


@pytest.mark.parametrize("text", ["", "1,x", "0", "1,65"])
def test_bad_user_counts_are_one_line(text: str) -> None:
    with pytest.raises(UserError, match="--concurrency"):
        parse_levels(text)


def test_user_counts_parse_in_order_without_repeats() -> None:
    assert parse_levels("1, 4,16,4") == (1, 4, 16)
