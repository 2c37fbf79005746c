"""The blind arena: Bradley–Terry ratings against hand-checked cases, ties and "both bad", intervals, position bias,
the vote log (append-only, damaged lines named and skipped), the service's blind draw and vote, and the CLI."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest

from adapters.errors import UserError
from playground.leaderboard import ELO_SCALE, fit_bradley_terry, leaderboard, position_bias
from playground.votes import LOG_NAME, Outcome, Vote, VoteLog

A, B, TIE, BOTH_BAD = Outcome.A, Outcome.B, Outcome.TIE, Outcome.BOTH_BAD


def _votes(arm_a: str, arm_b: str, outcome: Outcome, count: int, **fields) -> list[Vote]:
    return [Vote("How much is the Summit 2 tent?", arm_a, arm_b, outcome, **fields) for _ in range(count)]


def _by_player(standings) -> dict:
    return {s.player: s for s in standings}


# --- ratings -----------------------------------------------------------------------------------------------------


def test_two_arms_match_the_closed_form():
    """Two players: the maximum-likelihood P(RAG preferred) is wins / (wins + losses) = 3 / 4, so the log-odds gap is
    ln 3 and the Elo gap 400·log10(3) ≈ 190.85, split evenly around 1000."""
    votes = _votes("rag", "finetuned", A, 2) + _votes("finetuned", "rag", B, 1) + _votes("rag", "finetuned", B, 1)
    board = _by_player(leaderboard(votes, prior=0.0, resamples=20).by_arm)  # few resamples: the ratings are checked
    rag, tuned = board["RAG"], board["Fine-tuned"]
    assert rag.rating == pytest.approx(1000 + 200 * math.log10(3), abs=1e-4)
    assert tuned.rating == pytest.approx(1000 - 200 * math.log10(3), abs=1e-4)
    gap = (rag.rating - tuned.rating) / ELO_SCALE
    assert 1 / (1 + math.exp(-gap)) == pytest.approx(0.75, abs=1e-6)
    assert (rag.wins, rag.losses, rag.win_rate) == (3, 1, 0.75)


def test_three_arms_whose_votes_fit_the_model_exactly():
    """Strengths 4 : 2 : 1 predict 2/3, 2/3 and 4/5; votes in exactly those proportions are the maximum-likelihood
    fit, so the log-strength gaps are ln 2 and ln 2."""
    wins = np.zeros((3, 3))
    wins[0, 1], wins[1, 0] = 2, 1  # hybrid beat rag 2 : 1
    wins[1, 2], wins[2, 1] = 2, 1  # rag beat base 2 : 1
    wins[0, 2], wins[2, 0] = 4, 1  # hybrid beat base 4 : 1
    theta = fit_bradley_terry(wins, prior=0.0)
    assert theta[0] - theta[1] == pytest.approx(math.log(2), abs=1e-5)
    assert theta[1] - theta[2] == pytest.approx(math.log(2), abs=1e-5)
    assert theta.sum() == pytest.approx(0.0, abs=1e-9)


def test_a_tie_counts_half_a_win_for_each():
    """2 wins, 1 loss and 2 ties are 3 : 2 in half-wins: the gap is ln 1.5, the win rate (2 + 1) / 5."""
    votes = _votes("rag", "base", A, 2) + _votes("rag", "base", B, 1) + _votes("base", "rag", TIE, 2)
    board = _by_player(leaderboard(votes, prior=0.0, resamples=20).by_arm)  # few resamples: the ratings are checked
    rag, base = board["RAG"], board["Base (control)"]
    assert rag.rating - base.rating == pytest.approx(400 * math.log10(1.5), abs=1e-4)
    assert (rag.ties, base.ties) == (2, 2)
    assert rag.win_rate == pytest.approx(0.6) and base.win_rate == pytest.approx(0.4)


def test_both_bad_is_counted_but_not_rated():
    rated = _votes("rag", "base", A, 3) + _votes("base", "rag", A, 1)
    with_bad = rated + _votes("rag", "base", BOTH_BAD, 4) + _votes("hybrid", "base", BOTH_BAD, 1)
    before = _by_player(leaderboard(rated, resamples=200).by_arm)
    board = leaderboard(with_bad, resamples=200)
    after = _by_player(board.by_arm)
    assert after["RAG"].rating == pytest.approx(before["RAG"].rating)
    assert after["RAG"].win_rate == before["RAG"].win_rate == 0.75
    assert (after["RAG"].both_bad, after["RAG"].votes) == (4, 8)
    assert (after["Base (control)"].both_bad, after["Base (control)"].votes) == (5, 9)
    hybrid = after["Hybrid"]  # only "both bad" votes: counted, unrated, listed last
    assert (hybrid.rating, hybrid.win_rate, hybrid.both_bad) == (None, None, 1)
    assert board.by_arm[-1].player == "Hybrid"
    assert board.votes == 9 and board.to_json()["rated_votes"] == 4


def test_an_unbeaten_arm_has_a_finite_rating_and_the_prior_barely_moves_a_well_voted_one():
    unbeaten = _by_player(leaderboard(_votes("hybrid", "base", A, 5), resamples=200).by_arm)
    assert math.isfinite(unbeaten["Hybrid"].rating) and unbeaten["Hybrid"].rating > unbeaten["Base (control)"].rating
    many = _votes("rag", "base", A, 30) + _votes("rag", "base", B, 10)
    board = _by_player(leaderboard(many, resamples=200).by_arm)
    assert board["RAG"].rating - board["Base (control)"].rating == pytest.approx(400 * math.log10(3), rel=0.01)


def test_intervals_hold_the_rating_are_seeded_and_shrink_with_more_votes():
    few = _votes("rag", "finetuned", A, 6) + _votes("rag", "finetuned", B, 4)
    many = few * 10
    first = _by_player(leaderboard(few, resamples=300).by_arm)["RAG"]
    again = _by_player(leaderboard(few, resamples=300).by_arm)["RAG"]
    assert (first.low, first.high) == (again.low, again.high)  # same log, same seed: same interval
    assert first.low < first.rating < first.high
    wide = first.high - first.low
    narrow = _by_player(leaderboard(many, resamples=300).by_arm)["RAG"]
    assert narrow.high - narrow.low < wide / 2
    single = _by_player(leaderboard(_votes("rag", "base", A, 1)).by_arm)["RAG"]
    assert single.rating is not None and (single.low, single.high) == (None, None)  # nothing to resample


def test_the_adapter_board_separates_adapters_and_the_arm_board_pools_them():
    votes = _votes("finetuned", "rag", A, 3, adapter_a="voice") + _votes("finetuned", "rag", B, 3, adapter_a="facts")
    board = leaderboard(votes, resamples=200)
    arms = _by_player(board.by_arm)
    assert set(arms) == {"Fine-tuned", "RAG"} and arms["Fine-tuned"].wins == 3 and arms["Fine-tuned"].losses == 3
    adapters = _by_player(board.by_adapter)
    assert set(adapters) == {"Fine-tuned (adapter voice)", "Fine-tuned (adapter facts)", "RAG"}
    assert adapters["Fine-tuned (adapter voice)"].rating > adapters["RAG"].rating
    assert adapters["Fine-tuned (adapter facts)"].rating < adapters["RAG"].rating
    assert board.by_adapter[0].adapter == "voice"


# --- position bias -----------------------------------------------------------------------------------------------


def test_position_bias_is_the_share_of_decisive_votes_won_by_a_with_a_wilson_interval():
    votes = _votes("rag", "base", A, 7) + _votes("base", "rag", B, 3) + _votes("rag", "base", TIE, 2)
    votes += _votes("rag", "base", BOTH_BAD, 1)
    bias = position_bias(votes)
    assert (bias.a_wins, bias.b_wins, bias.ties, bias.both_bad) == (7, 3, 2, 1)
    z, n, p = 1.959964, 10, 0.7  # Wilson: (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert bias.a_rate == 0.7
    assert bias.low == pytest.approx((centre - half) / (1 + z * z / n), abs=1e-4)
    assert bias.high == pytest.approx((centre + half) / (1 + z * z / n), abs=1e-4)
    assert "7 of 10" in bias.sentence and "no sign of position bias" in bias.sentence
    biased = position_bias(_votes("rag", "base", A, 40) + _votes("rag", "base", B, 10))
    assert biased.low > 0.5 and "shown first (A) is preferred more often than chance" in biased.sentence
    assert "cannot be checked" in position_bias(_votes("rag", "base", TIE, 2)).sentence


# --- the vote log ------------------------------------------------------------------------------------------------

FIELDS = {
    "question",
    "arm_a",
    "arm_b",
    "vote",
    "adapter_a",
    "adapter_b",
    "answer_a",
    "answer_b",
    "settings",
    "time",
}


def test_votes_append_one_json_object_per_line_with_every_field(tmp_path):
    log = VoteLog(tmp_path)
    first = Vote("Q1?", "rag", "hybrid", A, adapter_b="train", answer_a="x", settings={"decoding": {"seed": 0}})
    second = Vote("Q2?", "base", "rag", BOTH_BAD, time="2026-01-01T00:00:00+00:00")
    log.append(first)
    stored = log.path.read_bytes()
    log.append(second)
    assert log.path == tmp_path / "votes" / LOG_NAME
    assert log.path.read_bytes().startswith(stored)  # appended: what was there is untouched
    lines = log.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert all(set(r) == FIELDS for r in records)
    assert records[0]["arm_a"] == "rag" and records[0]["adapter_b"] == "train" and records[0]["vote"] == "a"
    assert records[1]["vote"] == "both_bad"
    assert log.read().votes == [first, second] and log.read().problems == []


def test_a_damaged_line_is_named_by_number_and_the_others_still_count(tmp_path):
    log = VoteLog(tmp_path)
    good = Vote("Q?", "rag", "base", A)
    log.append(good)
    with log.path.open("a", encoding="utf-8") as out:
        out.write("{not json\n")
        out.write("\n")  # blank: not a vote, not a problem
        out.write(json.dumps({**good.to_json(), "arm_b": "rag"}) + "\n")
        out.write(json.dumps({**good.to_json(), "vote": "maybe"}) + "\n")
        out.write("[1, 2]\n")
    log.append(good)
    found = log.read()
    assert found.votes == [good, good]
    assert [p.split(":")[0] for p in found.problems] == [f"{LOG_NAME}, line {n}" for n in (2, 4, 5, 6)]
    assert "not valid JSON" in found.problems[0]
    assert "both 'rag'" in found.problems[1]
    assert "vote is 'maybe'" in found.problems[2]
    assert "expected a JSON object, got list" in found.problems[3]
    assert leaderboard(found.votes, found.problems, resamples=50).problems == found.problems


def test_an_append_after_a_cut_off_line_keeps_both(tmp_path):
    """A crash mid-write leaves a last line without its newline: the next vote goes on a line of its own."""
    log = VoteLog(tmp_path)
    log.append(Vote("Q?", "rag", "base", A))
    with log.path.open("ab") as out:
        out.write(b'{"question": "cut off", "arm_')
    before = log.path.read_bytes()
    later = Vote("Q2?", "hybrid", "finetuned", TIE)
    log.append(later)
    assert log.path.read_bytes().startswith(before)
    found = log.read()
    assert found.votes[-1] == later and len(found.votes) == 2
    assert found.problems and found.problems[0].startswith(f"{LOG_NAME}, line 2: not valid JSON")


def test_an_empty_home_has_no_votes(tmp_path):
    found = VoteLog(tmp_path).read()
    assert (found.votes, found.problems) == ([], [])
    board = leaderboard(found.votes)
    assert (board.votes, board.by_arm, board.by_adapter) == (0, [], [])


# --- the service: a blind draw, then the vote names the arms -----------------------------------------------------


class FakeCompare:
    """Stands in for CompareService: each drawn arm answers "answer of ARM" in two pieces."""

    def __init__(self, home, adapter: str | None = "train") -> None:
        from playground.runtime import ModelInfo

        self.runtime = SimpleNamespace(
            settings=SimpleNamespace(home=home, shared=False), model=ModelInfo("tiny", "demo", adapter)
        )
        self.asked: list[tuple[str, ...]] = []

    def setup(self) -> SimpleNamespace:
        return SimpleNamespace(concurrency=2)

    def check(self, question: str, options) -> str:
        from playground.compare import check_request

        return check_request(question, options)

    def stream(self, question: str, options) -> Iterator:
        from playground.compare import ARMS, Comparison

        self.asked.append(options.arms)
        retrieval = {"top_k": 3, "mode": "hybrid", "files": [], "rerank": False, "stages": ["bm25"]}
        state = Comparison(question, self.runtime.model, list(options.arms), {"max_new_tokens": 8}, retrieval)
        state.timing = "interleaved"
        state.adapters = {arm: (self.runtime.model.adapter if ARMS[arm][0] else None) for arm in options.arms}
        state.texts = dict.fromkeys(options.arms, "")
        yield state
        for piece in ("answer of ", "{arm}"):
            for arm in options.arms:
                state.texts[arm] += piece.format(arm=arm)
                yield state
        state.done = True
        yield state


def _arena(tmp_path, adapter: str | None = "train", seed: int = 3):
    from playground.arena import ArenaService

    return ArenaService(FakeCompare(tmp_path, adapter), rng=random.Random(seed))


def test_the_draw_is_two_different_arms_in_either_order(tmp_path):
    arena = _arena(tmp_path)
    drawn = {arena.draw(("base", "rag", "finetuned", "hybrid"), "train") for _ in range(200)}
    assert len(drawn) == 12  # every ordered pair of the four arms comes up: both positions for each arm
    assert {arena.draw(("rag", "hybrid"), "train") for _ in range(50)} == {("rag", "hybrid"), ("hybrid", "rag")}
    no_adapter = {arena.draw(("base", "rag", "finetuned", "hybrid"), None) for _ in range(50)}
    assert no_adapter == {("base", "rag"), ("rag", "base")}  # only arms that can answer are drawn
    with pytest.raises(UserError, match="at least two arms"):
        arena.draw(("rag",), "train")
    with pytest.raises(UserError, match="no LoRA adapter has been trained"):
        arena.draw(("rag", "finetuned"), None)


def test_play_streams_two_unnamed_answers_then_the_vote_stores_who_was_who(tmp_path):
    from playground.compare import CompareOptions

    arena = _arena(tmp_path)
    matches = list(arena.play("  How much is the Summit 2 tent?  ", CompareOptions()))
    final = matches[-1]
    assert [m.votable for m in matches].count(True) == 1 and final.votable
    assert arena.compare.asked == [(final.arm_a, final.arm_b)]  # only the two drawn arms answered
    assert final.answer_a == f"answer of {final.arm_a}" and final.answer_b == f"answer of {final.arm_b}"
    assert any(0 < len(m.answer_a) < len(final.answer_a) for m in matches)  # streamed in pieces
    with pytest.raises(UserError, match="Wait until both answers"):
        arena.vote(matches[0], A)
    vote = arena.vote(final, "b")
    record = json.loads(arena.log.path.read_text(encoding="utf-8"))
    assert record["question"] == "How much is the Summit 2 tent?"
    assert (record["arm_a"], record["arm_b"], record["vote"]) == (final.arm_a, final.arm_b, "b")
    for side, arm in (("a", final.arm_a), ("b", final.arm_b)):
        assert record[f"adapter_{side}"] == ("train" if arm in ("finetuned", "hybrid") else None)
    assert record["settings"]["decoding"] == {"max_new_tokens": 8} and record["settings"]["base_model"] == "tiny"
    assert "stages" not in record["settings"]["retrieval"] and record["time"]
    assert vote.vote is B and arena.leaderboard().votes == 1


def test_play_refuses_a_bad_question_before_any_draw_and_vote_needs_a_match(tmp_path):
    from playground.compare import CompareOptions

    arena = _arena(tmp_path)
    with pytest.raises(UserError, match="Type a question first"):
        next(arena.play("   ", CompareOptions()))
    assert arena.compare.asked == []
    with pytest.raises(UserError, match="Ask a question first"):
        arena.vote(None, A)


def test_a_held_match_takes_one_vote_and_a_wrong_outcome_leaves_it_to_vote_on(tmp_path, monkeypatch):
    """The API's arena: a finished match waits by an unguessable id; the vote names the arms and drops it."""
    from playground import arena as arena_module
    from playground.compare import CompareOptions

    arena = _arena(tmp_path)
    final = list(arena.play("How much is the Summit 2 tent?", CompareOptions()))[-1]
    held = arena.hold(final)
    assert len(held) >= 16 and held != arena.hold(final)
    with pytest.raises(UserError, match="A vote is one of a, b, tie, both_bad; got 'left'"):
        arena.vote_held(held, "left")
    vote = arena.vote_held(held, "tie")  # still there after the mistyped vote
    assert (vote.arm_a, vote.arm_b, vote.vote) == (final.arm_a, final.arm_b, TIE)
    with pytest.raises(UserError, match="voted on already"):
        arena.vote_held(held, "a")  # counted once
    with pytest.raises(UserError, match="is not one `arena` returned"):
        arena.vote_held("made-up", "a")
    monkeypatch.setattr(arena_module, "HELD_MATCHES", 2)
    first, *_ = [arena.hold(final) for _ in range(3)]
    with pytest.raises(UserError, match="the latest 2 wait"):
        arena.vote_held(first, "a")  # the oldest went first
    assert arena.leaderboard().votes == 1


# --- the page: blind while answering, named after the vote ----------------------------------------------------------


def test_the_page_hides_the_names_until_the_vote_then_shows_them_and_the_board(tmp_path):
    """Drives the arena's event handlers as Gradio would call them (no browser): the wiring, not the layout."""
    import gradio as gr

    from playground.compare import ROW_NAMES
    from playground.ui import arena as arena_tab
    from playground.ui.compare import CompareControls

    arena = _arena(tmp_path)
    with gr.Blocks() as page:
        controls = CompareControls(
            adapter=gr.Dropdown(["train"], value="train"),
            files=gr.Dropdown([], multiselect=True),
            max_new_tokens=gr.Slider(8, 512, value=16),
            temperature=gr.Slider(0, 1.5, value=0),
            seed=gr.Number(0),
            alone=gr.Checkbox(False),
            top_k=gr.Slider(1, 10, value=3),
            mode=gr.Radio(["hybrid"], value="hybrid"),
            rerank=gr.Checkbox(False),
        )
        arena_tab.build(arena, gr.BrowserState(None), controls)
    by_id = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}

    def handler(elem_id: str, event: str = "click"):
        return next(fn.fn for fn in page.fns.values() if (by_id[elem_id]._id, event) in fn.targets)

    opened = handler("arena-tab", "select")()
    assert opened[by_id["arena-note"]] == "No votes yet." and opened[by_id["arena-board"]] == []
    settings = [16, 0.0, 0, False, 3, "hybrid", [], False, "train"]  # CompareControls.inputs() order
    updates = list(handler("arena-ask")("How much is the Summit 2 tent?", list(ROW_NAMES), None, *settings))
    vote_a, reveal = by_id["arena-vote-a"], by_id["arena-reveal"]
    assert [u[vote_a]["interactive"] for u in updates] == [False] * (len(updates) - 1) + [True]
    assert all(u[reveal] == "" for u in updates)  # nothing names the arms while answering
    match = next(value for key, value in updates[-1].items() if isinstance(key, gr.State))
    assert updates[-1][by_id["arena-a"]] == match.answer_a and updates[-1][by_id["arena-b"]] == match.answer_b

    voted = handler("arena-vote-a")(match)
    assert f"**A** was **{arena_tab.arm_label(match.arm_a, match.adapter_a)}**" in voted[reveal]
    assert "A is better" in voted[reveal] and voted[vote_a]["interactive"] is False
    rows = {row[1]: row for row in voted[by_id["arena-board"]]}
    winner = arena_tab.NAMES[match.arm_a]
    assert rows[winner][0] == 1 and rows[winner][4:] == [1, 0, 0, 0, 1]
    assert voted[by_id["arena-note"]].startswith("1 vote (0 both bad). A (shown first) won 1 of 1")
    with pytest.raises(gr.Error, match="Ask a question first"):  # the match is spent: a second vote is refused
        handler("arena-vote-b")(next(value for key, value in voted.items() if isinstance(key, gr.State)))


def test_board_rows_show_the_interval_and_leave_unrated_arms_unranked():
    from playground.ui.arena import board_rows

    votes = _votes("rag", "base", A, 3) + _votes("rag", "base", B, 1) + _votes("hybrid", "rag", BOTH_BAD, 1)
    rows = board_rows(leaderboard(votes, resamples=200).by_arm)
    assert [row[:2] for row in rows] == [[1, "RAG"], [2, "Base (control)"], ["", "Hybrid"]]
    assert re.fullmatch(r"1\d{3} \[\d{3,4}, \d{4}\]", rows[0][2]) and rows[0][3] == "75%"
    assert rows[2][2:4] == ["–", "–"] and rows[2][-2:] == [1, 1]


# --- the command line ----------------------------------------------------------------------------------------------


def test_arms_rated_on_few_votes_are_named_in_a_caution():
    few = leaderboard(_votes("rag", "finetuned", A, 3) + _votes("hybrid", "rag", B, 2), resamples=50)
    assert few.caution == (  # RAG has 5 rated votes: it is not named
        "Few votes: Hybrid, Fine-tuned rated on fewer than 5 votes each; their ratings and intervals will move a lot "
        "with the next votes."
    )
    assert few.to_json()["caution"] == few.caution
    enough = leaderboard(_votes("rag", "finetuned", A, 4) + _votes("finetuned", "rag", A, 2), resamples=50)
    assert enough.caution == ""


def test_cli_leaderboard_json(tmp_path, capsys):
    from playground.__main__ import main

    log = VoteLog(tmp_path)
    for vote in _votes("rag", "finetuned", A, 3, adapter_b="train") + _votes(
        "finetuned", "rag", A, 1, adapter_a="train"
    ):
        log.append(vote)
    log.append(Vote("Q?", "hybrid", "base", BOTH_BAD, adapter_a="train"))
    with log.path.open("a", encoding="utf-8") as out:
        out.write("garbage\n")
    assert main(["leaderboard", "--json", "--home", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    board = json.loads(captured.out)
    assert board["votes"] == 5 and board["rated_votes"] == 4
    by_arm = {row["player"]: row for row in board["by_arm"]}
    assert by_arm["RAG"]["wins"] == 3 and by_arm["RAG"]["win_rate"] == 0.75
    assert by_arm["RAG"]["low"] < by_arm["RAG"]["rating"] < by_arm["RAG"]["high"]
    assert by_arm["Hybrid"]["rating"] is None and by_arm["Hybrid"]["both_bad"] == 1
    assert {row["player"] for row in board["by_adapter"]} == {
        "RAG",
        "Fine-tuned (adapter train)",
        "Hybrid (adapter train)",
        "Base (control)",
    }
    assert board["position"]["a_wins"] == 4 and board["position"]["b_wins"] == 0
    assert board["problems"] == [f"{LOG_NAME}, line 6: not valid JSON (Expecting value)"]
    assert "line 6" in captured.err
