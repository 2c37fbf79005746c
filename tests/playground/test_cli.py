"""The README's command: `python -m playground compare "QUESTION" --json`, offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

from playground.config import PROJECT_ROOT


def test_compare_json_offline(runtime, home, run_cli):
    """Uses the models the session fixture built (same PLAYGROUND_HOME: the cache is reused)."""
    done = run_cli(home, "compare", "What is the price of the Ridgeline 4 tent?", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["model"]["source"] == "demo"
    assert "HF_HUB_OFFLINE" in result["model"]["note"]
    assert result["answers"]["rag"]["text"] and result["answers"]["finetuned"]["text"]
    assert "ridgeline-4-tent.txt" in [c["source"] for c in result["chunks"]]


def test_compare_support_marks_each_sentence_in_the_json_and_the_text(runtime, home, run_cli):
    done = run_cli(home, "compare", "What is the price of the Ridgeline 4 tent?", "--support", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    support = json.loads(done.stdout)["support"]
    assert set(support["answers"]) == {"rag", "finetuned", "hybrid"}  # the base model has nothing to be backed by
    for found in support["answers"].values():
        marks = [sentence["mark"] for sentence in found["sentences"]]
        assert all(mark in {"chunk", "training", "none"} for mark in marks) and len(marks) == sum(
            found["counts"].values()
        )
    shown = run_cli(home, "compare", "What is the price of the Ridgeline 4 tent?", "--support").stdout
    assert re.search(r"Support, rag: \d+ sentences backed by a retrieved chunk, \d+ by the training data", shown)


def test_empty_question_exits_non_zero_with_a_message(runtime, home, run_cli):
    done = run_cli(home, "compare", "  ", "--json")
    assert done.returncode == 2
    assert "Type a question" in done.stderr


def test_bad_setting_names_the_variable(home):
    env_home = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "playground", "compare", "hi"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PLAYGROUND_HOME": env_home, "PLAYGROUND_TOP_K": "many"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "PLAYGROUND_TOP_K" in done.stderr


def test_bench_retrieval_prints_figures_with_a_same_run_baseline(home, run_cli):
    done = run_cli(home, "bench", "retrieval", "--chunks", "1500", "--queries", "3", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["chunks"] == 1500
    for key in ("dense_p50_ms", "bm25_p50_ms", "fused_p50_ms", "write_s"):
        assert report[key] > 0 and report["baseline"][key] > 0


def test_index_adds_files_reports_each_and_compare_retrieves_them(runtime, home, tmp_path, run_cli):
    own_home = tmp_path / "home"
    for cached in ("models", "indexes"):  # reuse the session's demo model and sample index
        shutil.copytree(home / cached, own_home / cached)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zyx-lantern.md").write_text("# Zyxquark lantern\n\nThe Zyxquark lantern costs $77 and glows green.\n")
    (docs / "empty.txt").write_text("")
    done = run_cli(own_home, "index", str(docs / "zyx-lantern.md"), str(docs / "empty.txt"), "--json")
    assert done.returncode == 1, done.stderr[-2000:]
    reports = {r["file"]: r for r in json.loads(done.stdout)}
    assert reports["zyx-lantern.md"]["status"] == "indexed" and reports["zyx-lantern.md"]["chunks"] >= 1
    assert reports["empty.txt"]["status"] == "error" and "empty.txt" in reports["empty.txt"]["error"]

    again = run_cli(own_home, "index", str(docs / "zyx-lantern.md"), "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout)[0]["status"] == "indexed"

    compared = run_cli(own_home, "compare", "How much is the Zyxquark lantern?", "--json")
    assert compared.returncode == 0, compared.stderr[-2000:]
    sources = [c["source"] for c in json.loads(compared.stdout)["chunks"]]
    assert sources.count("zyx-lantern.md") == 1, sources


def test_finetune_json(runtime, home, run_cli):
    """The same job code as the page: trains on the demo base, registers the adapter, prints the summary."""
    data = PROJECT_ROOT / "sample_data" / "finetune" / "formats" / "qa.csv"
    done = run_cli(home, "finetune", "--data", str(data), "--max-steps", "3", "--name", "cli voice", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    expected = {"name", "path", "backend", "steps", "train_loss", "eval_loss", "tokens_per_s", "status", "forgetting"}
    assert set(result) == expected
    # The job ended with the forgetting check, stored with the adapter.
    assert result["forgetting"]["questions"] == 24 and "perplexity" in result["forgetting"]["sentence"]
    assert "forgetting check: On general text" in done.stderr
    assert result["status"] == "completed" and result["steps"] == 3 and result["backend"] == "transformers"
    assert result["name"].startswith("cli-voice") and (PROJECT_ROOT / result["path"] / "adapter_config.json").exists()
    assert "step 3/3" in done.stderr and "dataset: " in done.stderr and "backend: transformers" in done.stderr


def test_finetune_progress_lines():
    """Each event the job logs is one line; a type the CLI has no words for prints as its JSON."""
    from adapters.jobs.events import Step, UnknownEvent
    from playground.__main__ import _progress_line

    step = Step(time=1.0, step=2, total_steps=8, loss=1.25, learning_rate=1e-4, tokens_per_s=300.4, eta_s=12.2)
    assert _progress_line(step) == "step 2/8 train loss (last step) 1.2500 300 tokens/s, ETA 12 s"
    note = UnknownEvent(time=1.0, type_name="note", data={"text": "hi"})
    assert json.loads(_progress_line(note)) == {"type": "note", "text": "hi"}


def test_finetune_rejects_malformed_data_before_training(home, tmp_path, run_cli):
    data = tmp_path / "broken.jsonl"
    good = '{"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]}'
    data.write_text(good + "\n" + '{"messages": [{"role": "user", "content": "no answer"}]}\n{oops\n')
    done = run_cli(home, "finetune", "--data", str(data), "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert "broken.jsonl, line 2" in done.stderr and "line 3" in done.stderr
    assert "knowledge base" not in done.stderr  # it stopped before loading anything


def test_an_adapter_named_train_answers_from_the_cli(runtime, home, run_cli):
    """Fine-tuning on train.jsonl names the adapter `train` (a peft module attribute); `--adapter train` finds
    it in the registry, never on the Hub, and it answers in the fine-tuned and hybrid arms."""
    data = PROJECT_ROOT / "sample_data" / "finetune" / "train.jsonl"
    trained = run_cli(home, "finetune", "--data", str(data), "--max-steps", "2", "--json")
    assert trained.returncode == 0, trained.stderr[-2000:]
    name = json.loads(trained.stdout)["name"]
    assert name.startswith("train")
    done = run_cli(home, "compare", "How much does the Summit 2 tent cost?", "--adapter", name, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["model"]["adapter"] == name
    for arm in ("finetuned", "hybrid"):
        assert result["answers"][arm]["adapter"] == name and result["answers"][arm]["text"]
    assert "download" not in done.stderr.lower()


def test_compare_json_reports_the_control_and_honest_latency(runtime, home, run_cli):
    done = run_cli(
        home, "compare", "How much does the Summit 2 tent cost?", "--json", "--top-k", "8", "--timing", "sequential"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    answers = result["answers"]
    assert answers["base"]["text"] and answers["base"]["adapter"] is None
    rag, finetuned = answers["rag"], answers["finetuned"]
    assert 0 < rag["retrieval_s"] <= rag["ttft_s"] and finetuned["retrieval_s"] == 0
    assert rag["ttft_s"] > finetuned["ttft_s"]
    assert result["timing"]["strategy"] == "sequential" and len(result["chunks"]) == 8


def test_unknown_adapter_is_one_line(runtime, home, run_cli):
    done = run_cli(home, "compare", "Hi?", "--adapter", "no-such-adapter")
    assert done.returncode == 2
    assert "no-such-adapter" in done.stderr and "Traceback" not in done.stderr


def _one_line_error(done: subprocess.CompletedProcess, *expected: str) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    for text in expected:
        assert text in done.stderr, done.stderr[-2000:]


def test_user_mistakes_are_one_line_before_anything_loads(home, tmp_path, run_cli):
    missing = tmp_path / "missing.jsonl"
    done = run_cli(home, "eval", "--questions", str(missing))
    _one_line_error(done, "missing.jsonl")
    assert "knowledge base" not in done.stderr, "it stopped before loading anything"
    _one_line_error(run_cli(home, "compare", "Hi?", "--arms", "rag,magic"), "arms")
    _one_line_error(run_cli(home, "compare", "Hi?", "--top-k", "0"), "top-k")
    _one_line_error(run_cli(home, "bench", "retrieval", "--chunks", "0"), "--chunks must be at least 1")
    _one_line_error(run_cli(home, "bench", "compare", "--concurrency", "1,x"), "--concurrency", "'1,x'")
    _one_line_error(run_cli(home, "compare", "Hi?", "--home", str(PROJECT_ROOT / "README.md")), "README.md")


def test_retrieval_modes_on_the_command_line(home, run_cli):
    from pipelines.retrieval_modes import DEFAULT_MODE, RetrievalMode
    from playground.__main__ import parser

    def mode(*args: str) -> RetrievalMode:
        return parser().parse_args(["compare", "Hi?", *args]).retrieval

    assert mode() is DEFAULT_MODE
    assert all(mode("--retrieval", m.value) is m for m in RetrievalMode)
    assert mode("--retrieval", "hybrid") is RetrievalMode.FUSED and mode("--retrieval", "bm25") is RetrievalMode.KEYWORD
    expected = f"expected one of {', '.join(m.value for m in RetrievalMode)}"
    _one_line_error(run_cli(home, "compare", "Hi?", "--retrieval", "magic"), "retrieval mode is 'magic'", expected)


def test_a_device_that_is_not_there_is_one_line(runtime, home):
    done = subprocess.run(
        [sys.executable, "-m", "playground", "compare", "Hi?"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PLAYGROUND_HOME": str(home), "PLAYGROUND_DEMO_SIZE": "tiny", "PLAYGROUND_DEVICE": "cuda"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    _one_line_error(done, "PLAYGROUND_DEVICE")


def test_prepare_rebuild_demo_reaches_the_settings():
    from playground.__main__ import _settings, parser

    args = parser().parse_args(["prepare", "--rebuild-demo"])
    assert _settings(args).rebuild_demo is True
    assert _settings(parser().parse_args(["prepare"])).rebuild_demo is False


def test_every_command_prints_its_help(capsys):
    """argparse formats help text with %: a bare one (as in "95 % intervals") breaks --help."""
    import argparse

    from playground.__main__ import parser

    top = parser()
    top.format_help()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert sub.format_help(), name
    assert "95 %" in top.format_help()  # shown as written
