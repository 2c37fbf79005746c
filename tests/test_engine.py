"""The engine: one batched call for all rows, identical to separate calls, streamed per row."""

from __future__ import annotations

import pytest

from adapters.engine import DecodingSettings, GenerationRequest, RowDone
from adapters.streaming import TokenEvent
from pipelines.prompts import plain_messages, rag_messages

GREEDY = DecodingSettings(max_new_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def requests(runtime):
    question = "How much does the Summit 2 tent cost?"
    context = rag_messages(question, [("summit-2-tent.md", "The Summit 2 tent costs $249.")])
    adapter = runtime.model.adapter
    return [
        GenerationRequest(context, None),
        GenerationRequest(plain_messages(question), adapter),
        GenerationRequest(context, adapter),
    ]


def test_batched_rows_equal_separate_calls_token_for_token(runtime, requests):
    engine = runtime.engine
    batched = engine.generate(requests, GREEDY)
    separate = [engine.generate([request], GREEDY)[0] for request in requests]
    for together, alone in zip(batched, separate, strict=True):
        assert together.text == alone.text
        assert together.completion_tokens == alone.completion_tokens
        assert together.prompt_tokens == alone.prompt_tokens


def test_adapter_changes_the_answer(runtime, requests):
    """Same prompt, with and without the adapter: peft really routes rows to different weights."""
    engine = runtime.engine
    import torch

    batch = engine.tokenizer([engine.render_prompt(requests[0].messages)] * 2, return_tensors="pt")
    with torch.inference_mode():
        logits = engine.model(**batch, adapter_names=["__base__", runtime.model.adapter]).logits
    assert not torch.allclose(logits[0], logits[1])


def test_stream_sends_each_row_its_own_deltas_then_its_result(runtime, requests):
    deltas: dict[int, str] = {0: "", 1: "", 2: ""}
    done: dict[int, object] = {}
    for event in runtime.engine.stream(requests, GREEDY):
        if isinstance(event, TokenEvent):
            assert event.row not in done, "a row streamed text after it had finished"
            deltas[event.row] += event.text
        else:
            assert isinstance(event, RowDone)
            done[event.row] = event.result
    assert sorted(done) == [0, 1, 2]
    for row, result in done.items():
        assert deltas[row].strip() == result.text
        assert result.completion_tokens >= 1
        assert 0 <= result.ttft_s <= result.latency_s


def test_rag_prompt_is_longer_than_the_bare_question(runtime, requests):
    rag, finetuned, hybrid = runtime.engine.generate(requests, GREEDY)
    assert rag.prompt_tokens > finetuned.prompt_tokens
    assert hybrid.prompt_tokens == rag.prompt_tokens


def test_one_copy_of_the_base_weights(runtime):
    """Adapters add LoRA matrices only; the base weights are not duplicated."""
    model = runtime.engine.model
    base = model.get_base_model()
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    total = sum(p.numel() for p in model.parameters())
    plain = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    assert total == plain + lora


def test_unknown_adapter_is_refused(runtime):
    with pytest.raises(KeyError, match="not loaded"):
        list(runtime.engine.stream([GenerationRequest(plain_messages("hi"), "missing")], GREEDY))
