"""`python -m playground bench all`: every bench in turn, one row per figure against the target its module names.

The quick run really runs every bench on this machine (a couple of minutes); the figures themselves are noise."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
import torch

from playground.__main__ import main
from playground.bench import all as bench_all
from playground.bench import compare, concurrency, finetune, ingest, retrieval
from playground.config import PROJECT_ROOT

FIGURES = sum(len(bench.figures) for bench in bench_all.BENCHES)


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")][2:]  # the header rows left out


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    # A fresh home with the default demo size: the shipped demo model is copied in, not trained (as startup's
    # servers do with their own fresh homes).
    env = {**os.environ, "PLAYGROUND_HOME": str(tmp_path_factory.mktemp("bench-all-home")), "HF_HUB_OFFLINE": "1"}
    for name in ("PLAYGROUND_BASE_MODEL", "PLAYGROUND_DEMO_SIZE", "PLAYGROUND_ADAPTER"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "playground", "bench", "all", "--quick", "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done, json.loads(done.stdout)


def test_the_quick_run_measures_every_bench_against_its_modules_target(quick) -> None:
    _, summary = quick
    assert summary["quick"] and summary["note"] == bench_all.QUICK_NOTE
    assert [bench.name for bench in bench_all.BENCHES] == list(summary["benches"])
    targets = {
        ("retrieval", "speedup.fused"): ("≥", retrieval.TARGET_SPEEDUP),
        ("ingest", "ratio"): ("≥", ingest.TARGET_RATIO),
        ("finetune", "ratio"): ("≥", finetune.TARGET_RATIO),
        ("finetune --gpu", "ratio_at_longest"): ("≥", finetune.GPU_TARGET_RATIO),
        ("finetune --gpu", "memory_ratio_at_longest"): ("≤", finetune.GPU_MEMORY_TARGET),
        ("compare", "ratio_side_by_side"): ("≤", compare.TARGET_SIDE_BY_SIDE),
        ("compare", "ratio_three_way"): ("≤", compare.TARGET_THREE_WAY),
        ("compare", "ratio_memory"): ("≤", compare.TARGET_MEMORY),
        ("compare", "ratio_tokens_per_s"): ("≥", compare.TARGET_TOKENS_PER_S),
        ("compare --concurrency", "ratio_at_16"): ("≥", concurrency.TARGET_AT_16),
        ("startup", "cold.first_answer_s"): (None, None),
    }
    rows = {(row["bench"], row["figure"]): row for row in summary["rows"]}
    assert len(rows) == len(summary["rows"]) == FIGURES
    for key, (direction, target) in targets.items():
        assert (rows[key]["direction"], rows[key]["target"]) == (direction, target), key
    gpu = summary["benches"]["finetune --gpu"]
    if not torch.cuda.is_available():
        assert gpu["status"] == "skipped" and summary["machine"]["gpu"] is None
        assert rows[("finetune --gpu", "ratio_at_longest")]["note"] == "skipped: no CUDA GPU"
    for name, found in summary["benches"].items():
        if name != "finetune --gpu":
            assert found["status"] == "ok" and found["report"], (name, found["error"])
    for row in summary["rows"]:
        if row["bench"] != "finetune --gpu":
            assert row["value"] > 0 and row["note"] == ""
            assert (row["met"] is None) == (row["target"] is None)
    assert summary["benches"]["finetune"]["report"]["settings"]["steps"] == 3  # --quick's settings reached it
    assert summary["benches"]["startup"]["report"]["rounds"] == 1
    assert summary["machine"]["cores"] >= 1 and summary["machine"]["cpu"]
    assert summary["versions"]["torch"] == torch.__version__ and summary["versions"]["transformers"]
    assert summary["date"].endswith("UTC") and not summary["failed"]


def test_the_quick_runs_table_has_one_row_per_figure(quick) -> None:
    done, summary = quick
    text = summary["text"]
    assert bench_all.QUICK_NOTE in text and "machine: " in text and "torch " in text
    lines = _table_lines(text)
    assert len(lines) == FIGURES
    for bench in bench_all.BENCHES:
        for figure in bench.figures:
            assert sum(line.startswith(f"| {bench.name} | {figure.path} |") for line in lines) == 1
    if not torch.cuda.is_available():
        assert "| finetune --gpu | ratio_at_longest | skipped: no CUDA GPU | ≥ 1.8 | — |" in lines
    assert "bench all (7/7)" in done.stderr  # progress goes to stderr, the JSON alone to stdout


# -- formatting, on a made-up run --------------------------------------------------------------------------------


def _made_up_run() -> dict:
    outcomes = {
        "retrieval": bench_all.Outcome("ok", "c", 3.0, {"speedup": {"dense": 150.0, "bm25": 9.5, "fused": 120.0}}),
        "ingest": bench_all.Outcome("ok", "c", 9.0, {"ratio": 0.9}),
        "finetune": bench_all.Outcome("failed", "c", 2.0, error="no | base model"),
        "finetune --gpu": bench_all.Outcome("skipped", "c", error=bench_all.NO_CUDA),
        "compare": bench_all.Outcome(
            "ok",
            "c",
            11.0,
            {"ratio_side_by_side": 1.3, "ratio_three_way": 1.6, "ratio_memory": 1.1, "ratio_tokens_per_s": 0.95},
        ),
        "compare --concurrency": bench_all.Outcome("ok", "c", 19.0, {"ratio_at_16": 2.615}),
        "startup": bench_all.Outcome(
            "ok",
            "c",
            60.0,
            {
                "cold": {"first_http_200_s": 13.5, "first_answer_s": 14.2},
                "warm": {"first_http_200_s": 10.5, "first_answer_s": 11.2},
            },
        ),
    }
    machine = {"cuda": False, "gpu": None, "gpus": 0, "torch": "2.13.0+cpu", "transformers": "5.17.0"}
    date = dt.datetime(2026, 12, 1, 3, 20, tzinfo=dt.UTC)
    return bench_all.summarise(outcomes, machine, date, quick=True, seconds=104.0)


def test_the_table_gives_each_figure_its_value_target_and_verdict() -> None:
    summary = _made_up_run()
    lines = _table_lines(summary["text"])
    assert len(lines) == FIGURES
    expected = [
        "| retrieval | speedup.dense | 150 | ≥ 10 | yes |",
        "| retrieval | speedup.bm25 | 9.5 | ≥ 10 | no |",
        "| ingest | ratio | 0.9 | ≥ 0.85 | yes |",
        "| finetune | ratio | error: no \\| base model | ≥ 1 | — |",  # a | would split the Markdown cell
        "| finetune --gpu | ratio_at_longest | skipped: no CUDA GPU | ≥ 1.8 | — |",
        "| finetune --gpu | memory_ratio_at_longest | skipped | ≤ 0.3 | — |",
        "| compare | ratio_side_by_side | 1.3 | ≤ 1.3 | yes |",  # the target itself meets it
        "| compare | ratio_three_way | 1.6 | ≤ 1.5 | no |",
        "| compare | ratio_tokens_per_s | 0.95 | ≥ 0.9 | yes |",
        "| compare --concurrency | ratio_at_16 | 2.615 | ≥ 1.5 | yes |",
        "| startup | cold.first_http_200_s | 13.5 s | — | — |",
        "| startup | warm.first_answer_s | 11.2 s | — | — |",
    ]
    for line in expected:
        assert line in lines
    text = summary["text"]
    assert text.startswith("bench all, 2026-12-01 03:20 UTC\nmachine: ") and ", no GPU (" in text
    assert "versions: torch 2.13.0+cpu, transformers 5.17.0" in text and bench_all.QUICK_NOTE in text
    assert summary["failed"] == ["finetune"] and text.endswith("failed: finetune")
    assert summary["benches"]["compare"]["report"]["ratio_memory"] == 1.1
    assert json.loads(json.dumps(summary)) == summary


def test_a_long_error_is_cut_in_the_table_and_kept_whole_in_the_json() -> None:
    row = bench_all.Row("ingest", "ratio", None, "", 0.85, "≥", None, "error: " + "x" * 500)
    measured = bench_all.cells(row)[2]
    assert len(measured) == bench_all.ERROR_CHARS and measured.endswith("…")


def test_a_benchs_error_line_and_report_are_found_in_what_it_printed() -> None:
    assert bench_all.error_line(["loading", "error: --steps must be at least 1"], 2) == "--steps must be at least 1"
    traceback = ["Traceback (most recent call last):", '  File "x.py"', "RuntimeError: boom", ""]
    assert bench_all.error_line(traceback, 1) == "RuntimeError: boom (exit code 1)"
    assert bench_all.error_line([], -9) == "killed by signal 9"
    assert bench_all.json_report('noise\n{\n  "ratio": 1.2\n}\n') == {"ratio": 1.2}
    with pytest.raises(ValueError):
        bench_all.json_report("no report")
    assert bench_all.lookup({"cold": {"first_answer_s": 2}}, "cold.first_answer_s") == 2.0
    assert bench_all.lookup({"ratio": True}, "ratio") is None and bench_all.lookup(None, "ratio") is None


def test_a_bench_that_fails_gives_its_error_line_and_one_without_cuda_is_skipped() -> None:
    bench = bench_all.Bench(
        "ingest", ("ingest", "--chunks", "0"), (), (bench_all.Figure("ratio", "ingest.TARGET_RATIO"),)
    )
    outcome = bench_all.run_bench(bench, quick=False, cuda=False)
    assert outcome.status == "failed" and outcome.error == "--chunks must be at least 1, got 0"
    gpu = next(bench for bench in bench_all.BENCHES if bench.needs_cuda)
    assert bench_all.run_bench(gpu, quick=True, cuda=False).status == "skipped"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "all", "--chunks", "5"], "drop --chunks"),
        (["bench", "all", "--gpu", "--seq-len", "512"], "drop --gpu, --seq-len"),
        (["bench", "retrieval", "--quick"], "--quick is for bench all only"),
    ],
)
def test_flags_that_do_not_apply_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
