"""The advisor: the decision framework's rules for the answers that matter, the measurements it cites (a stored
evaluation run, freshness drill and arena votes in a private PLAYGROUND_HOME), where they contradict the answers,
and `python -m playground advise --json`."""

from __future__ import annotations

import json
import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from adapters.errors import UserError
from playground import eval_history, freshness
from playground.advisor import AdvisorService, advise
from playground.advisor_evidence import Evidence
from playground.advisor_rules import QUESTIONS, RULES, Answers, Approach, decide
from playground.evaluate import EvalReport, summarize
from playground.votes import Outcome, Vote, VoteLog

RAG, TUNED, HYBRID = Approach.RAG, Approach.FINETUNED, Approach.HYBRID


def _store_run(
    home: Path,
    f1: dict[str, float],
    latency: dict[str, float],
    count: int = 20,
    started: str = "10:00",
    owner: str = "",
) -> dict[str, Any]:
    """An evaluation run as the Evaluate tab stores it: rows scored per question and arm, summarised, saved."""
    noise = random.Random(0)
    rows = [
        {
            "question": f"question {i}",
            "kind": "",
            "arm": arm,
            "exact_match": None,
            "f1": min(1.0, max(0.0, f1[arm] + noise.uniform(-0.1, 0.1))),
            "rouge_l": None,
            "semantic_similarity": None,
            "fact_hit": None,
            "recall_at_k": None,
            "mrr": None,
            "retrieval_s": 0.0,
            "ttft_s": 0.1,
            "latency_s": latency[arm] + noise.uniform(-0.05, 0.05),
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "error": "",
        }
        for i in range(count)
        for arm in f1
    ]
    settings = {
        "started_at": f"2026-11-23T{started}:00+0000",
        "questions": {"name": "my-questions.csv"},
        "arms": list(f1),
    }
    folder = eval_history.save(home, EvalReport(settings, rows, summarize(rows, list(f1))), owner)
    return json.loads((folder / "run.json").read_text())


def _store_drill(home: Path, rag_new: bool = True, owner: str = "") -> dict[str, Any]:
    report = freshness.FreshnessReport(
        change={"source": "prices.md", "old": "$429", "new": "$449", "questions": ["Tent price?"]},
        reindex_s=1.96,
        answers=[
            {"arm": "rag", "adapter": "", "text": "", "new": rag_new, "old": False, "question": "Tent price?"},
            {"arm": "finetuned", "adapter": "train", "text": "", "new": False, "old": True, "question": "Tent price?"},
        ],
        retrieved=[{"question": "Tent price?", "sources": ["prices-updated.md"], "new_fact_read": True}],
        refinetune={
            "adapter": "drill",
            "preset": "quick demo",
            "job_s": 180.0,
            "training_s": 150.0,
            "answers": [{"question": "Tent price?", "text": "$449", "new": True}],
        },
    )
    return json.loads(freshness.save(home, report, owner).read_text())


def _vote(home: Path, winner: str, loser: str, count: int) -> None:
    log = VoteLog(home)
    for i in range(count):  # alternate the positions, as the arena's random order would
        a, b = (winner, loser) if i % 2 else (loser, winner)
        log.append(Vote("Tent price?", a, b, Outcome.A if a == winner else Outcome.B))


# --- the rules --------------------------------------------------------------------------------------------------


def test_every_answer_has_its_question_and_every_rule_reads_a_real_answer():
    assert [q.name for q in QUESTIONS] == [f.name for f in fields(Answers)]
    for rule in RULES:
        asked = next(q for q in QUESTIONS if q.name == rule.question)
        assert rule.answer in ([c for c, _ in asked.choices] if asked.choices else [True, False])
        assert rule.reason.endswith(".") and rule.favours


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (Answers(), RAG),  # monthly changes favour retrieval; a tie with the hybrid goes to the simpler one
        (Answers(changes="often"), RAG),
        (Answers(changes="rarely", citations=True), RAG),
        (Answers(changes="rarely", volume="large"), RAG),
        (Answers(changes="rarely", style="much"), TUNED),
        (Answers(changes="rarely", latency="strict"), TUNED),
        (Answers(changes="rarely", offline=True), TUNED),
        (Answers(changes="often", style="much"), HYBRID),  # both style and fresh facts matter
        (Answers(changes="sometimes", style="much", citations=True), HYBRID),
        (Answers(changes="rarely", style="much", latency="strict", budget="none"), RAG),  # nothing can be trained
    ],
)
def test_the_answers_lead_to_an_approach(answers, expected):
    assert decide(answers).approach is expected


def test_the_reasons_are_in_words_for_and_against():
    decision = decide(Answers(changes="often", style="much", latency="strict"))
    assert decision.approach is TUNED  # style + speed (4) tie the hybrid (4): the simpler approach wins
    assert any("voice, template or structure" in r.reason for r in decision.reasons)
    assert any("no retrieval step" in r.reason for r in decision.reasons)
    assert [r.question for r in decision.against] == ["changes"]

    cheap = advise(Answers(style="much", budget="none"))
    assert cheap.approach is RAG and cheap.decision.ruled_out == (TUNED, HYBRID)
    assert "Fine-tuned and Hybrid ruled out" in cheap.headline
    assert any("instructions and examples in the prompt" in r.reason for r in cheap.decision.reasons)


def test_an_answer_that_is_not_a_choice_is_a_user_error():
    with pytest.raises(UserError, match="'hourly' is not an answer: choose one of rarely, sometimes, often"):
        Answers(changes="hourly")


# --- the evidence -------------------------------------------------------------------------------------------------


def test_nothing_measured_cites_nothing(tmp_path):
    advice = AdvisorService(tmp_path).advise(Answers())
    assert advice.evidence == () and advice.contradictions == ()


def test_the_advice_cites_the_run_the_drill_and_the_votes_with_their_intervals(tmp_path):
    run = _store_run(
        tmp_path, {"rag": 0.5, "finetuned": 0.3, "hybrid": 0.72}, {"rag": 1.6, "finetuned": 0.8, "hybrid": 2.1}
    )
    _store_drill(tmp_path)
    _vote(tmp_path, "hybrid", "rag", 12)
    advice = AdvisorService(tmp_path).advise(Answers(changes="often", style="much"))
    assert advice.approach is HYBRID and advice.contradictions == ()
    evaluation, drill, votes = advice.evidence
    hybrid, rag = run["metrics"]["hybrid"]["f1"], run["metrics"]["rag"]["f1"]
    assert evaluation.source == run["run_id"]
    assert evaluation.sentence.startswith(
        f"On your 20 questions (my-questions.csv, run {run['run_id']}), Hybrid scored "
        f"{hybrid['mean']:.2f} Token F1 [{hybrid['low']:.2f}, {hybrid['high']:.2f}] "
        f"vs {rag['mean']:.2f} [{rag['low']:.2f}, {rag['high']:.2f}] for RAG (difference +"
    )
    ratio = run["metrics"]["hybrid"]["latency_s"]["mean"] / run["metrics"]["rag"]["latency_s"]["mean"]
    assert (
        "more than noise" in evaluation.sentence
        and f"at {ratio:.1f}× the time per answer of RAG" in evaluation.sentence
    )
    assert evaluation.figures["difference"]["arm"] == "hybrid" and evaluation.figures["difference"]["low"] > 0
    assert drill.sentence.startswith("In your latest freshness drill (prices.md: $429 → $449, ")
    assert (
        "re-indexing the changed file took 2.0 s (all RAG needs" in drill.sentence
        and "re-training took 3.0 min (2.5 min of training), and the re-trained adapter gave the new fact in 1 of 1"
        in (drill.sentence)
    )
    assert "RAG gave the new fact in 1 of 1 answers; Fine-tuned gave the new fact in 0 of 1" in drill.sentence
    assert votes.sentence.startswith("In 12 blind-arena votes") and "Hybrid 1" in votes.sentence
    assert "(won 100%, 12 votes)" in votes.sentence and votes.figures["by_arm"][0]["arm"] == "hybrid"


def test_a_chosen_run_is_cited_instead_of_the_latest_and_an_unknown_one_is_refused(tmp_path):
    first = _store_run(tmp_path, {"rag": 0.5, "hybrid": 0.6}, {"rag": 1.0, "hybrid": 1.2})
    _store_run(tmp_path, {"rag": 0.4, "finetuned": 0.4}, {"rag": 1.0, "finetuned": 0.5}, count=8, started="11:00")
    service = AdvisorService(tmp_path)
    assert "on your 8 questions" in service.advise(Answers()).evidence[0].sentence.lower()
    assert service.advise(Answers(), first["run_id"]).evidence[0].source == first["run_id"]
    assert [run_id for _, run_id in service.runs()][1] == first["run_id"]
    with pytest.raises(UserError, match="No stored evaluation run 'nope'"):
        service.advise(Answers(), "nope")


# --- contradictions ------------------------------------------------------------------------------------------------


def test_the_adapter_winning_although_style_matters_little_is_said(tmp_path):
    _store_run(tmp_path, {"rag": 0.3, "finetuned": 0.75}, {"rag": 1.0, "finetuned": 0.6})
    advice = AdvisorService(tmp_path).advise(Answers(changes="often"))
    assert advice.approach is RAG
    (note,) = advice.contradictions
    assert note.startswith("The measurements contradict your answers: you said style matters little, yet on your 20")
    assert "Fine-tuned — which has the adapter — beat RAG (Token F1 difference +0.4" in note


def test_needing_speed_when_the_recommended_arm_was_the_slowest_is_said(tmp_path):
    _store_run(tmp_path, {"rag": 0.5, "finetuned": 0.5}, {"rag": 1.0, "finetuned": 3.0})
    advice = AdvisorService(tmp_path).advise(Answers(changes="rarely", latency="strict"))
    assert advice.approach is TUNED
    assert any(
        "you need answers as fast as possible, but Fine-tuned was the slowest arm measured" in n
        for n in (advice.contradictions)
    )


def test_retrieval_that_missed_the_changed_fact_and_votes_against_the_advice_are_said(tmp_path):
    _store_drill(tmp_path, rag_new=False)
    _vote(tmp_path, "finetuned", "rag", 16)
    advice = AdvisorService(tmp_path).advise(Answers(changes="often"))
    assert advice.approach is RAG
    drill, votes = advice.contradictions
    assert "the knowledge changes weekly or more often and RAG is meant to keep up" in drill
    assert "gave the new fact in 0 of 1 answers, although retrieval read it for 1 of 1 questions" in drill
    assert votes.startswith("The votes contradict your answers: they point to RAG, but voters preferred Fine-tuned")


def test_an_evidence_record_from_elsewhere_is_read_as_stored():
    """`advise` takes records as stored: a run that did not include the chosen approach says so."""
    run = {"run_id": "r1", "questions": 3, "metrics": {"rag": {"f1": {"mean": 0.5, "low": 0.4, "high": 0.6}}}}
    advice = advise(Answers(style="much", changes="rarely"), Evidence(run=run))
    assert advice.evidence[0].sentence.endswith("The run did not include Fine-tuned: add it to the arms to measure it.")


# --- the command line -----------------------------------------------------------------------------------------------


def test_cli_advise_json_takes_the_answers_as_flags(tmp_path, capsys):
    from playground.__main__ import main

    _store_run(tmp_path, {"rag": 0.5, "hybrid": 0.7}, {"rag": 1.0, "hybrid": 1.3})
    code = main(["advise", "--home", str(tmp_path), "--style", "much", "--changes", "often", "--citations", "--json"])
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert found["approach"] == "hybrid" and found["answers"]["citations"] is True
    assert found["scores"] == {"rag": 4, "finetuned": 2, "hybrid": 6}
    assert {r["question"] for r in found["reasons"]} == {"changes", "style", "citations"}
    assert found["evidence"][0]["kind"] == "evaluation" and "Token F1" in found["evidence"][0]["sentence"]

    assert main(["advise", "--home", str(tmp_path), "--run", "missing"]) == 2
    assert capsys.readouterr().err.strip() == "error: No stored evaluation run 'missing'."


# --- the page -------------------------------------------------------------------------------------------------------


def test_the_tab_asks_every_question_and_shows_the_advice_in_markdown(tmp_path):
    import gradio as gr

    from playground.ui import advisor as advisor_tab

    _store_run(tmp_path, {"rag": 0.3, "finetuned": 0.75}, {"rag": 1.0, "finetuned": 0.6})
    with gr.Blocks() as page:
        advisor_tab.build(AdvisorService(tmp_path), gr.BrowserState(None))
    labels = {getattr(block, "label", None) for block in page.blocks.values()}
    assert {q.text for q in QUESTIONS} <= labels and "Evaluation run to cite" in labels

    shown = advisor_tab.markdown(AdvisorService(tmp_path).advise(Answers(changes="often", latency="strict")))
    assert shown.startswith("### Recommended: RAG (retrieval).")
    assert "**Why**\n\n- How often does the knowledge change? weekly or more often. The knowledge" in shown
    assert "**Pulling the other way**" in shown and "*(favours Fine-tuned)*" in shown
    assert "**What was measured**\n\n- On your 20 questions" in shown
    assert "**Where the measurements disagree**\n\n- ⚠️ The measurements contradict your answers" in shown
    empty = advisor_tab.markdown(AdvisorService(tmp_path / "empty").advise(Answers()))
    assert "Nothing measured yet" in empty and "disagree" not in empty


def test_a_run_of_too_few_questions_is_cited_without_claiming_a_lead(tmp_path):
    """Hybrid beats RAG on every one of 3 questions: its interval excludes zero, yet 3 questions call no lead."""
    _store_run(tmp_path, {"hybrid": 0.9, "rag": 0.3}, {"hybrid": 1.0, "rag": 1.0}, count=3)
    evaluation = AdvisorService(tmp_path).advise(Answers(changes="often", style="much")).evidence[0]
    assert "too few questions to tell, under 5" in evaluation.sentence
    assert "more than noise" not in evaluation.sentence


def test_on_a_shared_demo_a_visitor_is_cited_its_own_runs_and_drills_only(tmp_path):
    """Another visitor's run holds its questions and answers (maybe from its private uploads): never offered, cited
    or quoted as "your"; the owner (a server with one user, or the CLI) sees every one."""
    from playground.config import Settings
    from playground.roles import Roles

    roles = Roles(Settings(home=tmp_path, shared=True))
    mine, theirs = "a" * 32, "b" * 32
    own = _store_run(tmp_path, {"rag": 0.3, "finetuned": 0.75}, {"rag": 1.0, "finetuned": 0.6}, owner=roles.tag(mine))
    _store_drill(tmp_path, owner=roles.tag(mine))
    scores, seconds = {"rag": 0.9, "finetuned": 0.1}, {"rag": 1.0, "finetuned": 0.6}
    other = _store_run(tmp_path, scores, seconds, started="11:00", owner=roles.tag(theirs))
    _store_drill(tmp_path, rag_new=False, owner=roles.tag(theirs))
    assert own["owner"] == roles.tag(mine) and mine not in json.dumps(own)  # a digest, never the token itself

    service = AdvisorService(tmp_path, roles)
    assert [run_id for _, run_id in service.runs(mine)] == [own["run_id"]]
    assert service.runs(None) == []  # a page not yet loaded sees nothing
    cited = {c.kind: c for c in service.advise(Answers(changes="often"), workspace=mine).evidence}
    assert cited["evaluation"].source == own["run_id"] and cited["evaluation"].sentence.startswith("On your 20")
    assert cited["freshness"].figures["new_fact_given"]["rag"][0] == 1  # my drill's, though theirs is newer
    with pytest.raises(UserError, match=f"No stored evaluation run '{other['run_id']}'"):
        service.advise(Answers(), other["run_id"], workspace=mine)
    assert not service.advise(Answers(), workspace="c" * 32).evidence  # a third visitor: nothing of either

    owner = AdvisorService(tmp_path)  # one user, or the CLI on the server
    assert [run_id for _, run_id in owner.runs()] == [other["run_id"], own["run_id"]]
    assert owner.advise(Answers(), other["run_id"]).evidence[0].source == other["run_id"]
