"""The retrieval pane: scores of the stages that ran, a legend saying what they mean, and chunks that open to
their whole text."""

from __future__ import annotations

import re

from playground.ui.render import CSS, chunks_html, score_legend


def _chunk(scores: dict[str, float | None], content: str = "The Summit 2 tent costs $249.") -> dict:
    return {"source": "tents.md", "content": content, "score": 0.5, "scores": scores, "private": False, "used": []}


HYBRID = [_chunk({"bm25": 7.8, "dense": 0.61, "fused": 1.0}), _chunk({"bm25": 3.1, "dense": None, "fused": 0.49})]
# BM25 alone: the fused list is the BM25 ranking itself, its score says nothing more.
BM25_ONLY = [_chunk({"bm25": 7.8, "dense": None, "fused": 0.5}), _chunk({"bm25": 3.1, "dense": None, "fused": 0.49})]


def _heads(html: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", head) for head in re.findall(r"<div class='chunk-head'>(.*?)</div>", html)]


def test_only_the_stages_that_ran_are_shown():
    assert _heads(chunks_html(HYBRID)) == [
        "[1] tents.md · BM25 7.800 · dense 0.610 · fused 1.000",
        "[2] tents.md · BM25 3.100 · dense – · fused 0.490",
    ]
    assert _heads(chunks_html(BM25_ONLY)) == ["[1] tents.md · BM25 7.800", "[2] tents.md · BM25 3.100"]
    dense = [_chunk({"bm25": None, "dense": 0.61, "fused": 0.5})]
    assert _heads(chunks_html(dense)) == ["[1] tents.md · dense 0.610"]
    reranked = [_chunk({"bm25": 7.8, "dense": 0.61, "fused": 1.0, "rerank": 0.93})]
    assert _heads(chunks_html(reranked))[0].endswith("fused 1.000 · rerank 0.930")


def test_the_caller_can_name_the_stages():
    assert _heads(chunks_html(HYBRID, stages=["bm25"])) == ["[1] tents.md · BM25 7.800", "[2] tents.md · BM25 3.100"]
    assert "fused" not in chunks_html(BM25_ONLY, stages=["bm25", "rerank"]).split("rerank")[0]
    assert _heads(chunks_html([{"source": "a.md", "content": "x", "index": 1}])) == ["[1] a.md"]  # a preview


def test_legend_explains_each_shown_score():
    legend = score_legend(["bm25", "dense", "fused", "rerank"])
    assert legend.count("\n") == 0
    for words in ("BM25**: keyword", "dense**: cosine similarity", "(−1…1)", "reciprocal rank fusion", "cross-encoder"):
        assert words in legend, words
    bm25 = score_legend(["bm25"])
    assert "BM25" in bm25 and "fused" not in bm25 and "dense" not in bm25
    assert "fused" not in score_legend(None, BM25_ONLY) and "fused" in score_legend(None, HYBRID)
    assert score_legend(None) == "" and score_legend([]) == ""


LONG = ("The Summit 2 tent is a roomy two-person shelter. " * 12) + "It has a 5-year warranty on the frame."


def test_a_long_chunk_opens_to_its_whole_text_with_highlights():
    start = LONG.index("5-year")
    used = [[4, 17], [start, start + len("5-year warranty")]]
    html = chunks_html([{**_chunk({"bm25": 7.8}, LONG), "used": used}])
    preview, full = html.split("<details", 1)
    assert "<mark>Summit 2 tent</mark>" in preview and "5-year" not in preview and "…" in preview
    assert len(re.sub(r"<[^>]+>", "", preview.split("chunk-preview'>")[1])) < 400
    assert f"{len(LONG):,} characters, 1 more highlighted passage" in full
    # The fold holds every character of the chunk, highlights intact; nothing caps its height.
    assert re.sub(r"<[^>]+>", "", full.split("<div class='chunk-text'>")[1]).startswith(LONG)
    assert "<mark>5-year warranty</mark>" in full and "<mark>Summit 2 tent</mark>" in full
    assert "max-height" not in CSS.split(".chunk-text {")[1].split("}")[0]


def test_a_short_chunk_is_shown_whole_and_a_cut_never_splits_a_highlight():
    assert "<details" not in chunks_html([_chunk({"bm25": 1.0})])
    text = "word " * 58 + "The Ridgeline 4 tent weighs 9 lb. " + "more " * 100
    start = text.index("The Ridgeline")
    html = chunks_html([{**_chunk({"bm25": 1.0}, text), "used": [[start, start + 32]]}])
    assert "<mark>The Ridgeline 4 tent weighs 9 lb</mark> …" in html.split("<details")[0]
