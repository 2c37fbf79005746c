"""`python -m playground bench startup`: a real server process, timed to its first page and its first answer, cold
and warm; speed itself is for the bench."""

from __future__ import annotations

import pytest

from adapters.errors import UserError
from playground.bench.startup import run_startup_bench


def test_cold_and_warm_starts_are_timed_to_the_page_and_to_the_first_answer():
    report = run_startup_bench(rounds=1, env={"PLAYGROUND_RERANKER": "none"})
    assert report["rounds"] == 1 and len(report["runs"]["cold"]) == len(report["runs"]["warm"]) == 1
    for kind in ("cold", "warm"):
        figures = report[kind]
        assert 0 < figures["first_http_200_s"] <= figures["first_answer_s"]
        assert figures == report["runs"][kind][0]  # one round: its median is itself


def test_rounds_must_be_positive():
    with pytest.raises(UserError, match="rounds"):
        run_startup_bench(rounds=0)
