"""Evaluation runs: rows per question and arm, honest figures, intervals, stopping, history, and the CLI."""

from __future__ import annotations

import csv
import json
import math

import pytest

from playground import eval_history
from playground.compare import CompareOptions
from playground.eval_service import EvaluateService
from playground.evaluate import METRIC_LABELS, EvalReport, Progress, run, summarize
from playground.questions import load_questions

CSV_COLUMNS = [
    "question",
    "arm",
    "answer",
    "exact_match",
    "f1",
    "rouge_l",
    "semantic_similarity",
    "fact_hit",
    "recall_at_k",
    "mrr",
    "retrieval_s",
    "ttft_s",
    "latency_s",
    "prompt_tokens",
    "completion_tokens",
]

# Questions worded unlike the sample set's, each answered in one sample document.
QUESTIONS = (
    "question,reference,fact,source\n"
    "How many days do I have to send something back?,Returns are accepted within 60 days.,60 days,return-policy.md\n"
    "Which headlamp is called the Beacon?,The Beacon 400 headlamp.,Beacon 400,beacon-400-headlamp.md\n"
    "Is there a way to rent a tent?,Yes: the rental program rents tents.,rental,rental-program.md\n"
)


@pytest.fixture()
def question_file(tmp_path):
    path = tmp_path / "never-seen.csv"
    path.write_text(QUESTIONS)
    return path


def _row(question: str, arm: str, **scores: float | None) -> dict:
    row = {"question": question, "kind": "", "arm": arm, "error": ""}
    for name in ("exact_match", "f1", "rouge_l", "semantic_similarity", "fact_hit", "recall_at_k", "mrr"):
        row[name] = scores.get(name)
    for name in ("retrieval_s", "ttft_s", "latency_s", "prompt_tokens", "completion_tokens"):
        row[name] = scores.get(name, 1.0)
    return row


def test_summary_means_differences_and_findings_by_hand():
    # RAG hits the fact on 4 of 5 questions, the base model on none: RAG − base fact hit = +0.8 on every resample's
    # mean of pairs (1,0,... ), and an interval above zero; F1 is equal, so its difference is exactly 0.
    rows = []
    for index in range(5):
        question = f"q{index}"
        rows.append(_row(question, "base", f1=0.5, fact_hit=0.0))
        rows.append(_row(question, "rag", f1=0.5, fact_hit=1.0 if index else 0.0, recall_at_k=1.0, mrr=0.5))
    summary = summarize(rows, ("base", "rag"))
    assert summary["questions"] == 5 and summary["fact_hit_rate"] == {"base": 0.0, "rag": 0.8}
    assert summary["metrics"]["rag"]["fact_hit"]["mean"] == pytest.approx(0.8)
    assert summary["metrics"]["base"]["semantic_similarity"] is None  # nothing scored
    assert summary["retrieval"]["mrr"] == {"mean": 0.5, "low": 0.5, "high": 0.5, "n": 5}
    hit = next(d for d in summary["differences"] if d["metric"] == "fact_hit")
    assert (hit["arm"], hit["minus"]) == ("rag", "base") and hit["mean"] == pytest.approx(0.8)
    assert 0 < hit["low"] <= 0.8 <= hit["high"] <= 1.0
    assert hit["text"].startswith("RAG − Base ")
    f1 = next(d for d in summary["differences"] if d["metric"] == "f1")
    assert f1["mean"] == f1["low"] == f1["high"] == 0
    findings = " ".join(summary["findings"])
    assert "RAG scored highest (0.80)" in findings and "excludes zero" in findings
    assert "are not told apart" in findings  # F1: equal


def test_too_few_questions_call_no_lead_whatever_the_interval():
    """RAG hits the fact on each of 3 questions and the base model on none: the interval is [+1, +1], but 3
    questions are too few to call it a lead, in the findings, the caution and the table."""
    from playground.eval_tables import difference_rows

    rows = []
    for index in range(3):
        rows.append(_row(f"q{index}", "base", f1=0.5, fact_hit=0.0))
        rows.append(_row(f"q{index}", "rag", f1=0.5, fact_hit=1.0, recall_at_k=1.0, mrr=1.0))
    summary = summarize(rows, ("base", "rag"))
    assert summary["caution"].startswith("Only 3 questions: too few to tell arms apart (no lead is claimed under 5")
    findings = summary["findings"]
    assert findings[0] == summary["caution"]
    assert any("RAG scored highest (1.00)" in f and "not a lead on 3 questions" in f for f in findings)
    assert not any("excludes zero" in f for f in findings)
    hit = next(row for row in difference_rows(summary) if row[1] == METRIC_LABELS["fact_hit"])
    assert hit[3] == "too few questions to tell (under 5)"
    more = [_row(f"x{i}", arm, f1=0.5, fact_hit=float(arm == "rag")) for i in range(2) for arm in ("base", "rag")]
    enough = summarize(rows + more, ("base", "rag"))  # 5 questions: a lead may be called
    assert enough["caution"] == "" and any("excludes zero" in f for f in enough["findings"])


def test_a_run_scores_every_arm_with_honest_figures_and_is_stored(service, question_file, home):
    questions = load_questions(question_file)
    evaluation = EvaluateService(service)
    steps = list(evaluation.run(evaluation.start(), questions, CompareOptions(top_k=3)))
    progress, report = steps[:-1], steps[-1]
    assert [p.done for p in progress if isinstance(p, Progress)] == [1, 2, 3] and isinstance(report, EvalReport)
    assert progress[0].eta_s is not None and "1/3 questions" in progress[0].text
    assert len(report.rows) == 3 * 4
    for row in report.rows:
        reads = row["arm"] in ("rag", "hybrid")
        assert row["error"] == ""
        assert (row["recall_at_k"] is not None) == reads and (row["mrr"] is not None) == reads
        assert (row["retrieval_s"] > 0) == reads and row["ttft_s"] <= row["latency_s"]
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        for metric in ("exact_match", "f1", "rouge_l", "fact_hit"):
            assert 0.0 <= row[metric] <= 1.0
        assert -1.0 <= row["semantic_similarity"] <= 1.0
        assert row["adapter"] == ("" if row["arm"] in ("base", "rag") else service.runtime.model.adapter)
    # The retriever is real (MiniLM), so recall is not noise: each answer's file is among the top 3.
    recall = [row["recall_at_k"] for row in report.rows if row["arm"] == "rag"]
    assert sum(recall) >= 2, recall
    summary = report.summary
    for arm in ("base", "rag", "finetuned", "hybrid"):
        for found in summary["metrics"][arm].values():
            assert found["low"] - 1e-9 <= found["mean"] <= found["high"] + 1e-9 and found["n"] == 3
    assert len(summary["differences"]) == 6 * 5 and summary["top_k"] == 3
    settings = report.settings
    assert settings["questions"]["sha256"] == questions.sha256 and settings["retrieval"]["top_k"] == 3
    assert settings["adapter"] == service.runtime.model.adapter and settings["decoding"]["max_new_tokens"]
    record, rows_file = eval_history.load(home, report.run_id)
    assert record["settings"]["arms"] == ["base", "rag", "finetuned", "hybrid"] and record["run_id"] == report.run_id
    with rows_file.open() as stored:
        assert len(list(csv.DictReader(stored))) == 12
    assert report.run_id in [r["run_id"] for r in evaluation.history()]


def test_stopping_keeps_the_questions_answered(service, question_file):
    evaluation = EvaluateService(service)
    token = evaluation.start()
    report = None
    for step in evaluation.run(token, load_questions(question_file), CompareOptions(arms=("base",))):
        if isinstance(step, Progress):
            evaluation.stop(token)
        else:
            report = step
    assert report is not None and report.extra["stopped"] and report.summary["questions"] == 1
    assert report.summary["retrieval"] == {"recall_at_k": None, "mrr": None}  # no arm read chunks


def test_bad_options_are_refused_before_any_question(service, question_file):
    with pytest.raises(ValueError, match="arms must be one or more"):
        next(run(service, load_questions(question_file), CompareOptions(arms=("oracle",))))


def test_eval_cli_on_a_never_seen_csv_writes_rows_and_prints_the_summary(
    runtime, home, question_file, tmp_path, run_cli
):
    out = tmp_path / "r.csv"
    done = run_cli(home, "eval", "--questions", str(question_file), "--arms", "rag,hybrid", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["questions"] == 3 and summary["arms"] == ["rag", "hybrid"]
    assert {d["text"].split(":")[0] for d in summary["differences"]} >= {"Hybrid − RAG Token F1"}
    assert summary["settings"]["questions"]["name"] == "never-seen.csv"
    with out.open() as written:
        reader = csv.DictReader(written)
        assert set(CSV_COLUMNS) <= set(reader.fieldnames or [])
        rows = list(reader)
    assert len(rows) == 6 and all(row["recall_at_k"] in ("0.0", "1.0") for row in rows)
    assert all(not math.isnan(float(row["mrr"])) for row in rows)
    assert "3/3 questions" in done.stderr and f"stored as {home}" in done.stderr


def test_eval_cli_names_the_line_of_a_malformed_question_file(runtime, home, tmp_path, run_cli):
    bad = tmp_path / "bad.csv"
    bad.write_text("question,reference\nq1,r1\n,r2\n")
    done = run_cli(home, "eval", "--questions", str(bad))
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].endswith(
        "bad.csv, line 3: missing or empty field 'question'"
    )


def test_forgetting_on_demand_measures_base_and_adapter_on_the_engine(service):
    report = EvaluateService(service).forgetting(None)  # the startup adapter
    assert report.questions == 24 and report.tokens > 1000
    assert report.base_perplexity > 1 and report.adapter_perplexity > 1
    assert report.base_perplexity != report.adapter_perplexity  # the adapter answered in one pass only
    assert "perplexity" in report.sentence
    # The engine switched adapters for the check; a comparison afterwards still gets what it asks for.
    after = service.compare("What does the Ridgeline 4 tent cost?", CompareOptions(arms=("base", "finetuned")))
    assert after.adapters == {"base": None, "finetuned": service.runtime.model.adapter}


def test_forgetting_cli_prints_the_figures(runtime, home, run_cli):
    done = run_cli(home, "forgetting", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["questions"] == 24 and found["sentence"].startswith("On general text")
