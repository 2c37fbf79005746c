"""The engine: every side-by-side strategy gives the same greedy tokens as plain `generate`, streams per row,
runs on one long-lived worker, cancels when a stream closes, and takes adapters by any name."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from adapters.engine import SIDE_BY_SIDE, DecodingSettings, GenerationRequest, RowDone
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


def _plain_generate(engine, request, tokens: int) -> list[int]:
    """What transformers' own `generate` answers for one request alone (greedy)."""
    ids = engine.tokenizer(engine.render_prompt(request.messages), return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = engine.model.generate(
            **ids,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=False,
            pad_token_id=engine.tokenizer.pad_token_id,
            adapter_names=[engine.internal_name(request.adapter)],
        )
    return out[0, ids["input_ids"].shape[1] :].tolist()


@pytest.mark.parametrize("strategy", list(SIDE_BY_SIDE))
def test_every_strategy_answers_as_plain_generate_token_for_token(runtime, requests, strategy):
    engine = runtime.engine
    settings = DecodingSettings(max_new_tokens=10, min_new_tokens=10)
    results = engine.generate(requests, settings, strategy)
    for request, result in zip(requests, results, strict=True):
        expected = engine.tokenizer.decode(_plain_generate(engine, request, 10), skip_special_tokens=True).strip()
        assert result.text == expected
        assert result.completion_tokens == 10
        assert result.timing == strategy


def test_batched_rows_equal_separate_calls_token_for_token(runtime, requests):
    engine = runtime.engine
    batched = engine.generate(requests, GREEDY, "batched")
    separate = [engine.generate([request], GREEDY, "sequential")[0] for request in requests]
    for together, alone in zip(batched, separate, strict=True):
        assert together.text == alone.text
        assert together.completion_tokens == alone.completion_tokens
        assert together.prompt_tokens == alone.prompt_tokens


def test_sampled_arm_does_not_depend_on_its_neighbours(runtime, requests):
    """Each arm samples from its own seeded generator: adding arms beside it changes nothing."""
    engine = runtime.engine
    settings = DecodingSettings(max_new_tokens=8, temperature=1.0, seed=3)
    alone = engine.generate(requests[1:2], settings, "interleaved")[0]
    together = engine.generate(requests, settings, "interleaved")[1]
    assert alone.text == together.text


def test_adapter_changes_the_answer(runtime, requests):
    """Same prompt, with and without the adapter: peft really routes rows to different weights."""
    engine = runtime.engine
    batch = engine.tokenizer([engine.render_prompt(requests[0].messages)] * 2, return_tensors="pt")
    with torch.inference_mode():
        logits = engine.model(**batch, adapter_names=["__base__", engine.internal_name(runtime.model.adapter)]).logits
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


def test_figures_are_each_arms_own(runtime, requests):
    """Interleaved arms report their own prefill: the long RAG prompt costs more than the bare question."""
    settings = DecodingSettings(max_new_tokens=6, min_new_tokens=6)
    rag, finetuned, _ = runtime.engine.generate(requests, settings, "interleaved")
    for result in (rag, finetuned):
        assert 0 < result.prefill_s == result.ttft_s <= result.latency_s
        assert result.tokens_per_s > 0


def test_generation_runs_on_one_long_lived_worker(runtime, requests):
    engine = runtime.engine
    seen: set[str] = set()
    original = engine._step

    def spy(arm, job):
        seen.add(threading.current_thread().name)
        return original(arm, job)

    before = threading.active_count()
    engine._step = spy
    try:
        for _ in range(5):
            engine.generate(requests[:2], GREEDY, "interleaved")
    finally:
        del engine._step
    assert seen == {"engine-worker"}
    assert threading.active_count() == before, "no thread is started per call"


def test_closing_a_stream_frees_the_engine_at_once(runtime, requests):
    engine = runtime.engine
    endless = DecodingSettings(max_new_tokens=100_000, min_new_tokens=100_000)
    for strategy in ("interleaved", "batched"):
        stream = engine.stream(requests, endless, strategy)
        next(event for event in stream if isinstance(event, TokenEvent))
        stream.close()  # what Gradio does when the browser goes away
        started = time.perf_counter()
        first = next(iter(engine.stream(requests[1:2], GREEDY)))
        assert isinstance(first, TokenEvent | RowDone)
        assert time.perf_counter() - started < 1.0, strategy


@pytest.mark.parametrize("name", ["train", "eval", "forward", "to", "cuda", "base_model", "my adapter/ü"])
def test_adapters_by_any_name(runtime, requests, name):
    """peft adapter names become module attributes; the engine keeps display names away from peft."""
    engine = runtime.engine
    engine.load_adapter(name, engine.adapters[runtime.model.adapter])
    try:
        question = requests[1].messages
        named, default = engine.generate(
            [GenerationRequest(question, name), GenerationRequest(question, runtime.model.adapter)], GREEDY
        )
        assert named.text == default.text and named.adapter == name
    finally:
        engine.unload_adapter(name)
    assert name not in engine.adapters


def test_a_batch_of_two_adapters_equals_each_alone(runtime, requests):
    """Two different adapters in one batch take peft's mixed-batch path; the answers do not change."""
    engine = runtime.engine
    engine.load_adapter("second", engine.adapters[runtime.model.adapter])
    try:
        mixed = [requests[0], requests[1], GenerationRequest(requests[2].messages, "second")]
        together = engine.generate(mixed, GREEDY, "batched")
        alone = [engine.generate([request], GREEDY, "sequential")[0] for request in mixed]
        assert [r.text for r in together] == [r.text for r in alone]
    finally:
        engine.unload_adapter("second")
