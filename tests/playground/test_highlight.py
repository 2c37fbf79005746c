"""Highlighting the chunk text an answer used."""

from __future__ import annotations

import itertools

from playground.highlight import used_spans
from playground.ui.render import chunks_html

CHUNK = "The Summit 2 tent costs $349 and weighs 4 lb 2 oz. It sleeps two people.\nColours: green, grey."


def _texts(spans: list[tuple[int, int]]) -> list[str]:
    return [CHUNK[start:end] for start, end in spans]


def test_runs_of_words_and_numbers_the_answer_repeats():
    answer = "Hey trailblazer! The Summit 2 tent costs $349. Happy trails!"
    assert _texts(used_spans(CHUNK, [answer])) == ["The Summit 2 tent costs $349"]


def test_numbers_alone_and_case_insensitive():
    assert _texts(used_spans(CHUNK, ["only 349!"])) == ["$349"]
    assert used_spans(CHUNK, ["it is 4, i think"]) == []  # a single digit alone matches too much by chance
    assert _texts(used_spans(CHUNK, ["it is 4 LB, i think"])) == ["4 lb"]
    assert _texts(used_spans(CHUNK, ["IT SLEEPS TWO PEOPLE"])) == ["It sleeps two people"]


WARRANTY = "The Ridge 40 pack has a 5-year warranty. It costs $2490 for ten and weighs 12 lb."


def _warranty(answer: str) -> list[str]:
    return [WARRANTY[start:end] for start, end in used_spans(WARRANTY, [answer])]


def test_numbers_count_only_with_the_same_unit():
    assert _warranty("The Ridge 40 pack has a 4-year warranty.") == ["The Ridge 40 pack has a"]
    assert _warranty("Yes: 5-year.") == ["5-year"]
    assert _warranty("Ten cost $249.") == []
    assert _warranty("It weighs 12 oz.") == []
    assert _warranty("It weighs 12 lb.") == ["12 lb"]
    assert _warranty("Twelve? No: 12.") == ["12"]  # the number without a unit: only the number lights
    assert _texts(used_spans(CHUNK, ["It weighs 2 lb."])) == []  # "2 oz" in the chunk: another unit
    assert _texts(used_spans(CHUNK, ["costs €349"])) == []  # another currency


def test_an_unused_word_is_never_marked_between_used_ones():
    # "year warranty. It costs" is repeated; the "5" before it must not be joined into the span before.
    spans = _warranty("The Ridge 40 pack has a 4-year warranty. It costs $2490 for ten.")
    assert spans == ["The Ridge 40 pack has a", "warranty", "It costs $2490 for ten"]


def test_nothing_used_and_short_runs_ignored():
    assert used_spans(CHUNK, ["I do not know."]) == []
    assert used_spans(CHUNK, ["the tent costs"]) == []  # three words: phrasing, not content
    assert used_spans(CHUNK, []) == []


def test_spans_from_several_answers_do_not_overlap():
    spans = used_spans(CHUNK, ["The Summit 2 tent costs a lot", "Summit 2 tent costs $349 and weighs"])
    assert spans == sorted(spans)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


def test_render_marks_the_used_text_and_escapes_the_rest():
    chunk = {"source": "a.md", "content": "<b>Price</b>: 349 dollars", "score": 1.0, "used": [[14, 17]]}
    html = chunks_html([chunk])
    assert "<mark>349</mark>" in html and "&lt;b&gt;Price&lt;/b&gt;" in html


def test_chinese_is_matched_character_by_character():
    """Written without spaces, a Chinese sentence was one word: an answer had to repeat it whole to mark anything."""
    chunk = "顶峰2号帐篷售价349美元。它可以睡两个人。"
    spans = used_spans(chunk, ["这款帐篷售价349美元，很划算。"])
    assert [chunk[start:end] for start, end in spans] == ["帐篷售价349美元"]
    assert used_spans(chunk, ["帐篷很好"]) == []  # two characters in a row are not a run
