"""The shipped demo model reads: over documents written here, which no part of its training saw, RAG answers hold
the asked fact, and the adapter's answers keep the brand voice."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from adapters import demo_model
from playground.config import PROJECT_ROOT

DOCUMENTS = {
    "harrow-bay-kayak.md": """Harrow Bay Touring Kayak

The Harrow Bay touring kayak is a sit-inside kayak for lakes and calm coastal water. Paddlers like it for day trips.

Price and size

The Harrow Bay kayak costs $1,180.
The Harrow Bay kayak is 14 feet 2 inches long.
The Harrow Bay kayak weighs 52 lb.
The Harrow Bay kayak has a maximum load of 310 lb.

Warranty

The Harrow Bay kayak hull is covered by a 7-year warranty.""",
    "quarry-lane-store.md": """Quarry Lane Store

The Quarry Lane store is the newest shop in the northern district.

Visiting

The Quarry Lane store is at 88 Tanner Road.
The Quarry Lane store opens at 8:30 AM on weekdays.
The Quarry Lane store phone number is (415) 730-2291.
The Quarry Lane store manager is Odile Marchetti.""",
    "lumalite-lantern.txt": """Lumalite 250 Lantern - Product Page

The Lumalite 250 lantern is a rechargeable camp lantern with a warm light mode.

Key specs

The Lumalite 250 lantern gives 250 lumens on the high setting.
The Lumalite 250 lantern runs for 42 hours on the low setting.
The Lumalite 250 lantern costs $58.
The Lumalite 250 lantern charges fully in 5 hours.""",
    "paddle-club.md": """Paddle Club Membership

The Paddle Club is a membership for people who rent boats often.

How it works

A Paddle Club membership costs $120 per year.
Paddle Club members get 25% off every boat rental.
The Paddle Club hosts a free river clinic on the first Saturday of June.
Paddle Club questions go to paddle@harrowbay.example.""",
    "frostline-gloves.txt": """Frostline Gloves

The Frostline gloves are insulated winter gloves for skiing and snowshoeing.

Details

The Frostline gloves cost $74.
The Frostline gloves come in a color called Arctic Teal.
The Frostline gloves are rated warm to -20 degrees Fahrenheit.
The Frostline gloves have a 3-year warranty.""",
}
QUESTIONS = [  # (question, fact, source)
    ("How much does the Harrow Bay kayak cost?", "$1,180", "harrow-bay-kayak.md"),
    ("How long is the Harrow Bay kayak?", "14 feet 2 inches", "harrow-bay-kayak.md"),
    ("What is the maximum load of the Harrow Bay kayak?", "310 lb", "harrow-bay-kayak.md"),
    ("Where is the Quarry Lane store?", "88 Tanner Road", "quarry-lane-store.md"),
    ("What time does the Quarry Lane store open?", "8:30 AM", "quarry-lane-store.md"),
    ("Who manages the Quarry Lane store?", "Odile Marchetti", "quarry-lane-store.md"),
    ("How bright is the Lumalite 250 lantern?", "250 lumens", "lumalite-lantern.txt"),
    ("How long does the Lumalite 250 lantern run on low?", "42 hours", "lumalite-lantern.txt"),
    ("What does the Lumalite 250 lantern cost?", "$58", "lumalite-lantern.txt"),
    ("How much is a Paddle Club membership?", "$120", "paddle-club.md"),
    ("What discount do Paddle Club members get on rentals?", "25%", "paddle-club.md"),
    ("What is the email address for Paddle Club questions?", "paddle@harrowbay.example", "paddle-club.md"),
    ("How much do the Frostline gloves cost?", "$74", "frostline-gloves.txt"),
    ("What color do the Frostline gloves come in?", "Arctic Teal", "frostline-gloves.txt"),
]


def _shipped_fits() -> bool:
    return all((demo_model.SHIPPED / part / "build_info.json").is_file() for part in ("base", "adapter"))


def _eval(tmp_path, *arguments: str, **variables: str) -> dict:
    return _command(tmp_path, "eval", *arguments, **variables)


def _command(tmp_path, command: str, *arguments: str, **variables: str) -> dict:
    env = {
        **os.environ,
        "PLAYGROUND_HOME": str(tmp_path / "home"),
        "PLAYGROUND_BASE_MODEL": "demo",
        "PLAYGROUND_DEMO_SIZE": "small",  # the shipped model, as a fresh clone starts
        "HF_HUB_OFFLINE": "1",
        **variables,
    }
    done = subprocess.run(
        [sys.executable, "-m", "playground", command, *arguments, "--json"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    if "training the base model" in done.stderr:
        raise RuntimeError("the kept model must be used, not rebuilt")
    return json.loads(done.stdout)


@pytest.mark.skipif(not _shipped_fits(), reason="no demo model is kept in the repository")
def test_on_the_sample_set_rag_reads_what_only_the_documents_hold_and_fine_tuning_does_not_know_it(tmp_path):
    """The product's thesis, offline: on the 30 sample questions whose fact only the documents hold, RAG finds the
    fact far more often than the adapter or the base model alone (measured when kept: 57 %, 0 %, 0 %)."""
    report = _eval(tmp_path, "--arms", "rag,finetuned,base")
    documents_only = report["by_kind"]["rag_only"]
    assert documents_only["rag"] >= 0.5, documents_only
    assert documents_only["finetuned"] <= 0.1 and documents_only["base"] <= 0.1, documents_only


@pytest.mark.skipif(not _shipped_fits(), reason="no demo model is kept in the repository")
def test_rag_finds_facts_in_documents_the_demo_model_never_saw(tmp_path):
    knowledge_base = tmp_path / "documents"
    knowledge_base.mkdir()
    for name, text in DOCUMENTS.items():
        (knowledge_base / name).write_text(text + "\n")
    questions = tmp_path / "questions.jsonl"
    rows = [{"question": q, "reference": fact, "fact": fact, "source": source} for q, fact, source in QUESTIONS]
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    answers = tmp_path / "answers.csv"
    report = _eval(
        tmp_path, "--questions", str(questions), "--out", str(answers), PLAYGROUND_KNOWLEDGE_BASE=str(knowledge_base)
    )
    assert report["questions"] == len(QUESTIONS) >= 12 and len(DOCUMENTS) >= 5
    assert report["fact_hit_rate"]["rag"] >= 0.5, report["fact_hit_rate"]
    assert report["fact_hit_rate"]["rag"] > report["fact_hit_rate"]["base"]
    with answers.open() as written:
        for row in csv.DictReader(written):
            if row["arm"] in ("finetuned", "hybrid"):
                assert row["answer"].startswith("Hey trailblazer!"), (row["arm"], row["answer"])


@pytest.mark.skipif(not _shipped_fits(), reason="no demo model is kept in the repository")
def test_the_guided_freshness_drill_shows_retrieval_with_the_new_fact_and_the_adapter_with_the_old(tmp_path):
    """Fine-tuned knowledge is static: after the guided price change, RAG and hybrid read the new price from the
    re-indexed copy while the adapter still answers with the price it was taught (the re-fine-tune is left out)."""
    report = _command(tmp_path, "freshness", "--no-retrain")
    said = {answer["arm"]: answer for answer in report["answers"]}
    assert said["rag"]["new"] and said["hybrid"]["new"], said
    assert said["finetuned"]["old"] and not said["finetuned"]["new"], said["finetuned"]
    assert not said["base"]["new"] and report["reindex_s"] > 0
