"""The command line mirrors the API's managing actions: the knowledge base's files listed and deleted, fine-tune jobs
listed and cancelled (without starting queued ones), adapters listed, and a blind match voted on in the terminal."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from playground.config import SAMPLE_DATA
from playground.finetune import FinetuneService
from playground.votes import VoteLog

NOTE = "# Orbit 9 lantern\n\nThe Orbit 9 lantern costs $77 and runs 40 hours on one charge.\n"


def test_documents_lists_the_indexed_files_and_deletes_one(tmp_path, run_cli):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "orbit.md").write_text(NOTE)
    shutil.copy(SAMPLE_DATA / "knowledge_base" / "faq.md", tmp_path / "docs" / "faq.md")
    home = tmp_path / "home"
    assert run_cli(home, "index", str(tmp_path / "docs")).returncode == 0
    listed = json.loads(run_cli(home, "documents", "--json").stdout)
    assert [row["file"] for row in listed] == ["faq.md", "orbit.md"] and all(row["chunks"] >= 1 for row in listed)
    done = run_cli(home, "documents", "--delete", "orbit.md", "--json")
    assert done.returncode == 0 and f"removed orbit.md ({listed[1]['chunks']} chunks)" in done.stderr
    assert [row["file"] for row in json.loads(done.stdout)] == ["faq.md"]
    missing = run_cli(home, "documents", "--delete", "orbit.md")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        f"error: orbit.md is not in the knowledge base under {home} (its files: faq.md)."
    )


def test_adapters_lists_the_registry(runtime, tmp_path, run_cli):
    folder = tmp_path / "adapters" / "my-voice"
    shutil.copytree(Path(runtime.engine.adapters[runtime.model.adapter]), folder)
    meta = {"name": "my-voice", "base_model": runtime.model.base, "steps": 40, "eval_loss": 1.25, "backend": "x"}
    (folder / "playground.json").write_text(json.dumps(meta))
    listed = json.loads(run_cli(tmp_path, "adapters", "--json").stdout)
    assert [(a["name"], a["steps"], a["eval_loss"]) for a in listed] == [("my-voice", 40, 1.25)]
    shown = run_cli(tmp_path, "adapters").stdout
    assert shown.startswith("my-voice: complete, 40 steps on ") and "held-out loss 1.2500" in shown


def test_jobs_lists_and_cancels_a_running_fine_tune(runtime, tmp_path, run_cli):
    service = FinetuneService(replace(runtime, settings=runtime.settings.with_overrides(home=tmp_path)))
    data = SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl"
    try:
        job = service.launch(data, "long one", "quick demo", fit={"max_steps": 5000})
        listed = json.loads(run_cli(tmp_path, "jobs", "--json").stdout)
        assert [(row["id"], row["name"]) for row in listed] == [(job.id, "long-one")]
        assert listed[0]["state"] in {"queued", "running"}
        done = run_cli(tmp_path, "jobs", "--cancel", job.id)
        assert done.returncode == 0 and "long-one" in done.stderr
        assert service.jobs.wait(job.id, timeout_s=180).state == "cancelled"
        unknown = run_cli(tmp_path, "jobs", "--cancel", "nope")
        assert unknown.returncode == 2 and "No fine-tune job 'nope'" in unknown.stderr
    finally:
        service.jobs.close()


def test_listing_jobs_never_starts_a_queued_one(runtime, tmp_path, run_cli):
    """A job queued while no app runs stays queued when `jobs` lists it."""
    from adapters.jobs.manager import JobManager

    service = FinetuneService(replace(runtime, settings=runtime.settings.with_overrides(home=tmp_path)))
    service.jobs.close()  # the app is gone; what is left may submit but never start a job
    service.jobs = JobManager(tmp_path, lead=False)
    spec_dir = service.launch(SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl", "later", "quick demo")
    try:
        shown = run_cli(tmp_path, "jobs")
        assert shown.returncode == 0 and f"{spec_dir.id} later: queued, step 0/" in shown.stdout
        time.sleep(3)  # longer than the supervisor's poll: a manager that took over would have started it by now
        assert service.jobs.view(spec_dir.id).state == "queued"
        assert not (tmp_path / "jobs" / spec_dir.id / "process.json").exists()
    finally:
        service.jobs.close()


def test_a_blind_match_in_the_terminal_names_the_arms_only_after_the_vote(runtime, home, run_cli):
    before = VoteLog(home).read().votes
    done = run_cli(home, "arena", "How much does the Summit 2 tent cost?", "--arms", "rag,base", stdin="left\nb\n")
    assert done.returncode == 0, done.stderr
    answers, revealed = done.stdout.split("\n\n", 1)[0], done.stdout.strip().splitlines()[-1]
    assert answers.startswith("A: ") and "RAG" not in answers and "Base" not in answers
    assert "'left' is not a vote." in done.stderr and "Which is better? a / b / tie / both_bad" in done.stderr
    assert revealed in {
        f"A was {a}; B was {b}. Stored; {len(before) + 1} votes in all (see `leaderboard`)."
        for a, b in (("RAG", "Base (control)"), ("Base (control)", "RAG"))
    }
    stored = VoteLog(home).read().votes[-1]
    assert stored.vote == "b" and {stored.arm_a, stored.arm_b} == {"rag", "base"}
    ended = run_cli(home, "arena", "How much does the Summit 2 tent cost?", "--arms", "rag,base", stdin="")
    assert ended.returncode == 2 and "error: No vote was read (the input ended); nothing was stored." in ended.stderr
    assert len(VoteLog(home).read().votes) == len(before) + 1
