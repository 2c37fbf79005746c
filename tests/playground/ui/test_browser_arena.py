"""In a real browser: the blind arena shows two unnamed answers, takes a vote, then names the arms and shows the
leaderboard with its intervals."""

from __future__ import annotations

import pytest

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


def test_vote_blind_then_see_the_names_and_the_leaderboard(open_page):
    context, page = open_page()
    page.get_by_role("tab", name="Blind arena").click()
    first = _play_and_vote(page, "How many days do I have to return an item?", "tie")
    assert "Your vote: Tie" in first
    assert page.locator("#arena-vote-a").is_disabled()  # one vote per pair
    second = _play_and_vote(page, "What is the price of the Ridgeline 4 tent?", "a")
    assert "Your vote: A is better" in second
    page.wait_for_function("() => document.querySelector('#arena-note').innerText.includes('2 votes')")
    board = page.locator("#arena-board").inner_text()
    assert "[" in board and "]" in board  # ratings carry their 95 % intervals
    assert "A (shown first) won 1 of 1" in page.locator("#arena-note").inner_text()
    context.close()
