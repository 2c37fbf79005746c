"""The optional cross-encoder rerank stage: found offline or not at all, and its scores on every chunk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from pipelines.rag import query_pipeline
from pipelines.reranker import resolve_reranker
from playground.compare import CompareOptions, CompareService

QUESTION = "How much does the Summit 2 tent cost?"


@pytest.fixture(scope="module")
def tiny_cross_encoder(runtime, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer BERT cross-encoder (random weights, one relevance logit) with MiniLM's tokenizer."""
    folder = tmp_path_factory.mktemp("cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(runtime.embedder.model)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_no_reranker_offline_or_when_switched_off(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = resolve_reranker("cross-encoder/not-in-any-cache-xyz")
    assert not missing.available and "not in the local cache" in missing.note
    assert not resolve_reranker("none").available


def test_asking_for_rerank_without_a_reranker_says_so(service):
    assert not service.runtime.reranker.available  # offline, nothing cached: the option is hidden
    with pytest.raises(ValueError, match="No reranker model is loaded"):
        service.compare(QUESTION, CompareOptions(rerank=True))


def test_rerank_stage_scores_and_order(runtime, tiny_cross_encoder):
    choice = resolve_reranker(str(tiny_cross_encoder))
    assert choice.available and choice.note == "local folder"
    pipeline = query_pipeline(
        runtime.store,
        runtime.embedder,
        runtime.engine,
        top_k=3,
        private=runtime.workspaces.store,
        reranker=choice.ranker,
    )
    service = CompareService(replace(runtime, pipeline=pipeline, reranker=choice))

    plain = service.compare(QUESTION, CompareOptions(arms=("rag", "finetuned"), max_new_tokens=8, top_k=3)).chunks
    assert all("rerank" not in c["scores"] for c in plain)

    reranked = service.compare(
        QUESTION, CompareOptions(arms=("rag", "finetuned"), max_new_tokens=8, top_k=3, rerank=True)
    ).chunks
    assert len(reranked) == 3
    scores = [c["scores"]["rerank"] for c in reranked]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert all(c["scores"]["fused"] is not None for c in reranked)  # picked from the fused candidates
    # It chose among 4 x top-k fused candidates: what it returns need not be the fused top 3.
    wide = service.compare(QUESTION, CompareOptions(arms=("rag", "finetuned"), max_new_tokens=8, top_k=12)).chunks
    assert {c["content"] for c in reranked} <= {c["content"] for c in wide}
