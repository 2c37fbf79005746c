"""Chunks are measured in the embedder's own tokens and never exceed what it reads."""

from __future__ import annotations

import itertools

import pytest
from haystack import Document

from pipelines.embedder import resolve_embedder
from pipelines.splitter import EmbedderTokenSplitter
from playground.config import SAMPLE_DATA


@pytest.fixture(scope="module")
def embedder():
    return resolve_embedder()


def test_default_chunk_size_is_what_minilm_reads(embedder):
    assert embedder.max_seq_length == 256
    assert embedder.max_chunk_tokens == 254


def test_every_chunk_fits_the_embedder_and_covers_the_text(embedder):
    splitter = EmbedderTokenSplitter(embedder.model, embedder.max_chunk_tokens, 50)
    text = (SAMPLE_DATA / "knowledge_base" / "return-policy.md").read_text() * 3
    chunks = splitter.run([Document(content=text, meta={"file_path": "return-policy.md"})])["documents"]
    assert len(chunks) >= 3
    for chunk in chunks:
        # Counted again with special tokens, as the embedder sees it.
        assert splitter.count_tokens(chunk.content) + 2 <= embedder.max_seq_length
        assert chunk.meta["file_path"] == "return-policy.md"
    joined = " ".join(c.content for c in chunks)
    for sentence in text.split(". ")[:20]:
        assert sentence.strip()[:40] in joined


def test_consecutive_chunks_overlap_by_at_most_the_overlap(embedder):
    splitter = EmbedderTokenSplitter(embedder.model, 60, 20)
    text = " ".join(f"Sentence number {i} talks about the Summit {i} tent." for i in range(40))
    chunks = splitter.run([Document(content=text)])["documents"]
    assert len(chunks) > 3
    for first, second in itertools.pairwise(chunks):
        assert first.meta["split_idx_start"] < second.meta["split_idx_start"]
        shared_start = second.meta["split_idx_start"]
        first_end = first.meta["split_idx_start"] + len(first.content)
        if shared_start < first_end:
            assert splitter.count_tokens(text[shared_start:first_end]) <= 20 + 2


def test_a_sentence_longer_than_a_chunk_is_cut_at_token_boundaries(embedder):
    splitter = EmbedderTokenSplitter(embedder.model, 32, 8)
    text = " ".join(["pinecrest"] * 300) + "."
    chunks = splitter.run([Document(content=text)])["documents"]
    assert len(chunks) > 5
    assert all(splitter.count_tokens(c.content) <= 32 for c in chunks)


def test_bad_settings_are_refused(embedder):
    with pytest.raises(ValueError, match="split_overlap"):
        EmbedderTokenSplitter(embedder.model, 50, 50)


def test_sentences_end_at_chinese_and_japanese_stops_without_a_space():
    from pipelines.splitter import _spans

    text = "帐篷售价349美元。它可以睡两个人！Returns are free. 保証は五年です。"
    assert [text[start:end] for start, end in _spans(text)] == [
        "帐篷售价349美元。",
        "它可以睡两个人！",
        "Returns are free. ",
        "保証は五年です。",
    ]
