"""In a real browser: the blind arena shows two unnamed answers, takes a vote, then names the arms and shows the
leaderboard with its intervals."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from playground.export import VOTE_COLUMNS

pytestmark = pytest.mark.browser

VOTE_ENABLED = "() => { const b = document.querySelector('#arena-vote-a'); return !!b && !b.disabled; }"


def _play_and_vote(page, question: str, button: str) -> str:
    page.fill("#arena-prompt textarea", question)
    page.click("#arena-ask")
    page.wait_for_function(VOTE_ENABLED, timeout=120_000)
    for side in ("a", "b"):
        assert page.locator(f"#arena-{side} textarea").input_value().strip(), side
    assert " was " not in page.locator("#arena-reveal").inner_text()  # no name before the vote
    page.click(f"#arena-vote-{button}")
    page.wait_for_function("() => document.querySelector('#arena-reveal').innerText.includes(' was ')", timeout=60_000)
    return page.locator("#arena-reveal").inner_text()


def test_vote_blind_then_see_the_names_and_the_leaderboard(open_page, download, tmp_path: Path, shots):
    context, page = open_page()
    page.get_by_role("tab", name="Blind arena").click()
    first = _play_and_vote(page, "How many days do I have to return an item?", "tie")
    assert "Your vote: Tie" in first
    assert page.locator("#arena-vote-a").is_disabled()  # one vote per pair
    second = _play_and_vote(page, "What is the price of the Ridgeline 4 tent?", "a")
    assert "Your vote: A is better" in second
    board = page.locator("#arena-board").inner_text()
    assert "[" in board and "]" in board  # ratings carry their 95 % intervals
    shots(page, "5-arena-vote-and-leaderboard")

    # The vote log, as stored (JSONL) and as a table (CSV), with every field of each vote; other tests of this
    # session may have voted before: the figures on the page are checked against the whole log
    stored = [
        json.loads(line) for line in download(page, "#arena-download-jsonl", tmp_path / "votes.jsonl").splitlines()
    ]
    table = list(csv.DictReader(io.StringIO(download(page, "#arena-download-csv", tmp_path / "votes.csv"))))
    assert len(stored) == len(table) >= 2
    assert tuple(table[0]) == VOTE_COLUMNS
    assert [row["vote"] for row in table[-2:]] == ["tie", "a"]
    assert table[-1]["question"] == "What is the price of the Ridgeline 4 tent?" and table[-1]["answer_a"].strip()
    assert {"question", "arm_a", "adapter_a", "arm_b", "adapter_b", "vote", "settings", "time"} <= set(stored[-1])
    assert stored[-1]["settings"].get("base_model")
    chose = [vote["vote"] for vote in stored if vote["vote"] in ("a", "b")]
    page.wait_for_function(f"() => document.querySelector('#arena-note').innerText.startsWith('{len(stored)} votes')")
    assert f"A (shown first) won {chose.count('a')} of {len(chose)}" in page.locator("#arena-note").inner_text()
    context.close()
