"""The freshness drill: a fact changes in a private copy; RAG reads the copy at once, the adapter needs a re-tune."""

from __future__ import annotations

import hashlib
import json

import pytest

from adapters.errors import UserError
from playground.compare import CompareOptions, CompareService
from playground.finetune import FinetuneService
from playground.freshness import (
    GUIDED,
    Change,
    FreshnessReport,
    FreshnessService,
    changed_copy,
    changed_dataset,
    latest,
    save,
)


def test_a_change_replaces_whole_occurrences_only():
    change = Change("f.md", "45 days", "60 days", ("q",))
    assert changed_copy("within 45 days, not 145 days; 45 days.", change, "f.md") == (
        "within 60 days, not 145 days; 60 days.",
        2,
    )
    with pytest.raises(UserError, match=r"f\.md does not contain '45 days'"):
        changed_copy("within 30 days", change, "f.md")
    with pytest.raises(UserError, match="nothing would change"):
        changed_copy("45 days", Change("f.md", "45 days", "45 days", ()), "f.md")


def test_the_fine_tuning_set_gets_the_same_change(tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "Return window?"}, {"role": "assistant", "content": "45 days."}]},
        {"messages": [{"role": "user", "content": "Tent?"}, {"role": "assistant", "content": "$429."}]},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "updated.jsonl"
    assert changed_dataset(data, Change("returns.md", "45 days", "60 days", ("q",)), out) == 1
    assert [json.loads(line)["messages"][1]["content"] for line in out.read_text().splitlines()] == [
        "60 days.",
        "$429.",
    ]


def test_each_drill_is_stored_with_its_time_and_the_latest_is_read_back(tmp_path):
    assert latest(tmp_path) is None
    first = save(tmp_path, FreshnessReport({"source": "f.md", "old": "45 days", "new": "60 days"}, reindex_s=0.5))
    stored = json.loads(first.read_text())
    assert first.parent == tmp_path / "freshness" and stored["reindex_s"] == 0.5 and stored["finished_at"]
    assert stored["sentence"].startswith("After f.md changed from 45 days to 60 days")
    second = first.with_name("99991231T000000Z-000000.json")  # a later drill, as save names it
    second.write_text(json.dumps({**stored, "reindex_s": 0.25}))
    assert latest(tmp_path) == {**stored, "reindex_s": 0.25, "file": second.name}
    second.write_text("{ cut off")  # a damaged report does not hide the one before it
    assert latest(tmp_path) == {**stored, "file": first.name}
    second.write_text(json.dumps({**stored, "owner": "another-browser"}))  # a shared demo's other visitor's
    assert latest(tmp_path, lambda owner: owner != "another-browser") == {**stored, "file": first.name}
    assert latest(tmp_path)["owner"] == "another-browser"  # the owner's view: every drill


def test_the_guided_drill_reads_the_changed_copy_and_times_a_real_re_fine_tune(runtime):
    original = runtime.settings.knowledge_base / GUIDED.source
    before = hashlib.sha256(original.read_bytes()).hexdigest()
    finetune = FinetuneService(runtime)
    service = CompareService(runtime, attach=finetune.ensure_loaded)  # as the page wires it
    try:
        drill = FreshnessService(
            service, refinetune=lambda data, name: finetune.train_and_wait(data, name, fit={"max_steps": 4})
        )
        change = drill.guided()
        assert change.questions and all("Glacier 15" in q for q in change.questions)
        report = drill.run(change, CompareOptions(top_k=3))
    finally:
        finetune.jobs.close()
    assert hashlib.sha256(original.read_bytes()).hexdigest() == before  # the shared document is never modified
    assert report.reindex_s > 0 and report.change["occurrences"] >= 1
    for read in report.retrieved:  # retrieval read the copy, never the original, and the new fact was in it
        assert "glacier-15-sleeping-bag-updated.md" in read["sources"]
        assert "glacier-15-sleeping-bag.md" not in read["sources"]
        assert read["new_fact_read"]
    assert {a["arm"] for a in report.answers} == {"base", "rag", "finetuned", "hybrid"}
    tuned = report.refinetune
    assert tuned["adapter"].startswith("freshness-drill") and tuned["steps"] == 4
    assert tuned["job_s"] >= tuned["training_s"] > 0 and tuned["messages_changed"] >= 1
    assert len(tuned["answers"]) == len(change.questions)
    assert "re-indexing one file" in report.sentence and "re-fine-tune" in report.sentence
    # The private copy is gone with the drill.
    assert "glacier-15-sleeping-bag-updated.md" not in service.sources()


def test_a_fact_the_file_does_not_state_is_refused_before_anything_runs(service):
    drill = FreshnessService(service)
    with pytest.raises(UserError, match="does not contain '99 days'"):
        drill.run(Change(GUIDED.source, "99 days", "100 days", ("q?",)))
    with pytest.raises(UserError, match="not a file of the shared knowledge base"):
        drill.run(Change("nope.md", "a", "b", ("q?",)))


def test_freshness_cli_without_re_tuning(runtime, home, run_cli):
    done = run_cli(home, "freshness", "--no-retrain", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    assert found["change"]["old"] == "$319" and found["refinetune"] == {} and found["reindex_s"] > 0
    assert "freshness: re-indexing" in done.stderr
    stored = [json.loads(path.read_text()) for path in (home / "freshness").glob("*.json")]
    assert any(report["reindex_s"] == found["reindex_s"] for report in stored)  # kept for the advisor to cite
