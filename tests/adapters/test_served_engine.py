"""The served generator against a fake vLLM: arms stream at once from the right model, figures and counts come
from the server, closing cancels, a refused arm says why, start-up and adapter registration fail in one line."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from adapters.demo_model import SHIPPED
from adapters.engine import DecodingSettings, GenerationRequest, RowDone
from adapters.errors import UserError
from adapters.served import SERVED, SERVED_SEQUENTIAL, RowFailed, ServedEngine
from adapters.streaming import TokenEvent
from pipelines.prompts import plain_messages, rag_messages

QUESTION = "How much does the Summit 2 tent cost?"
SETTINGS = DecodingSettings(max_new_tokens=40)


def _requests(adapter: str = "support-lora") -> list[GenerationRequest]:
    context = rag_messages(QUESTION, [("summit-2-tent.md", "The Summit 2 tent costs $249.")])
    return [
        GenerationRequest(plain_messages(QUESTION), None),
        GenerationRequest(context, None),
        GenerationRequest(plain_messages(QUESTION), adapter),
        GenerationRequest(context, adapter),
    ]


def _events(engine: ServedEngine, requests, settings=SETTINGS, strategy=None):
    deltas: dict[int, list[str]] = {}
    ends: dict[int, RowDone | RowFailed] = {}
    for event in engine.stream(requests, settings, strategy):
        if isinstance(event, TokenEvent):
            deltas.setdefault(event.row, []).append(event.text)
        else:
            ends[event.row] = event
    return deltas, ends


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connect_names_the_server_its_base_model_and_its_adapters(fake_openai):
    engine = ServedEngine.connect(fake_openai.url)
    assert engine.name == "fake-org/base-model" and engine.strategy == SERVED
    assert engine.server.describe() == f"served by vLLM 0.9.9-fake at {fake_openai.url}"
    assert engine.adapters == {"support-lora": Path("/srv/adapters/support-lora")}
    assert engine.listed == ("support-lora",)
    assert engine.tokenizer is None and engine.config is None and engine.calibration == {}


def test_arms_stream_at_once_each_from_its_model_with_the_servers_counts(fake_openai):
    engine = ServedEngine.connect(fake_openai.url)
    deltas, ends = _events(engine, _requests())
    assert fake_openai.max_in_flight == 4, "the four requests were in flight together"
    by_body = {(r.model, r.last_user): r for r in fake_openai.records}
    for row, request in enumerate(_requests()):
        model = request.adapter or "fake-org/base-model"
        record = by_body[(model, request.messages[-1]["content"])]
        assert len(deltas[row]) > 1, "the answer arrived in several deltas"
        result = ends[row].result
        assert result.text.startswith(f"[{model}]") and result.text == "".join(deltas[row]).strip()
        assert (result.prompt_tokens, result.completion_tokens) == (record.prompt_tokens, record.completion_tokens)
        assert result.token_counts == "server" and result.timing == SERVED and result.adapter == request.adapter
        assert 0 < result.ttft_s < result.latency_s and result.prefill_s == result.ttft_s
        assert result.tokens_per_s == pytest.approx((result.completion_tokens - 1) / (result.latency_s - result.ttft_s))
    assert "Context:" in ends[1].result.text and "Context:" not in ends[0].result.text, "RAG got the chunks"
    assert ends[0].result.finish_reason == "stop"


def test_sequential_sends_one_request_at_a_time(fake_openai):
    engine = ServedEngine.connect(fake_openai.url)
    results = engine.generate(_requests(), SETTINGS, "sequential")
    assert fake_openai.max_in_flight == 1
    assert [r.timing for r in results] == [SERVED_SEQUENTIAL] * 4
    with pytest.raises(UserError, match="built-in engine"):
        engine.generate(_requests(), SETTINGS, "batched")


def test_decoding_settings_reach_the_server(fake_openai):
    engine = ServedEngine.connect(fake_openai.url, api_key="secret-key")
    engine.generate(_requests()[:1], DecodingSettings(max_new_tokens=3, min_new_tokens=2, temperature=0.7, seed=5))
    engine.generate(_requests()[:1], DecodingSettings(max_new_tokens=30))
    sampled, greedy = (record.body for record in fake_openai.records)
    assert sampled["stream"] is True and sampled["stream_options"] == {"include_usage": True}
    assert (sampled["max_tokens"], sampled["temperature"], sampled["seed"], sampled["min_tokens"]) == (3, 0.7, 5, 2)
    assert sampled["top_p"] == 0.95
    assert "min_tokens" not in greedy and "top_p" not in greedy and greedy["temperature"] == 0.0
    assert fake_openai.records[0].authorization == "Bearer secret-key"
    assert engine.generate(_requests()[:1], DecodingSettings(max_new_tokens=3))[0].finish_reason == "length"


def test_without_usage_counts_come_from_the_local_tokenizer_or_are_none(fake_openai):
    fake_openai.usage = False
    bare = ServedEngine.connect(fake_openai.url).generate(_requests()[:1], SETTINGS)[0]
    assert (bare.prompt_tokens, bare.completion_tokens, bare.token_counts) == (0, 0, "none")
    counted = ServedEngine.connect(fake_openai.url, base_model=str(SHIPPED / "base"))
    assert counted.tokenizer is not None and counted.config is not None and not counted.files_note
    result = counted.generate(_requests()[:1], SETTINGS)[0]
    tokenizer = counted.tokenizer
    assert result.token_counts == "tokenizer"
    assert result.completion_tokens == len(tokenizer(result.text, add_special_tokens=False)["input_ids"])
    assert result.prompt_tokens > result.completion_tokens // 2 > 0


def test_closing_the_stream_closes_every_arms_request(fake_openai):
    fake_openai.word_delay_s = 0.05
    engine = ServedEngine.connect(fake_openai.url)
    events = engine.stream(_requests(), DecodingSettings(max_new_tokens=200))
    first = next(e for e in events if isinstance(e, TokenEvent))
    assert first.text
    closed = time.perf_counter()
    events.close()
    fake_openai.wait_idle()
    assert time.perf_counter() - closed < 3
    assert len(fake_openai.records) == 4
    assert all(r.aborted and not r.finished and r.sent_words < r.planned_words for r in fake_openai.records)


def test_a_refused_arm_says_what_and_where_and_the_others_answer(fake_openai):
    engine = ServedEngine.connect(fake_openai.url)
    del fake_openai.adapters["support-lora"]  # as if the server had restarted without it
    _, ends = _events(engine, _requests())
    assert isinstance(ends[0], RowDone) and isinstance(ends[1], RowDone)
    for row in (2, 3):
        message = str(ends[row].error)
        assert isinstance(ends[row], RowFailed) and "\n" not in message
        assert fake_openai.url in message and "'support-lora'" in message
        assert "HTTP 404" in message and "does not exist" in message
    with pytest.raises(UserError, match="does not exist"):
        engine.generate(_requests(), SETTINGS)


def test_a_server_gone_after_start_fails_each_arm_in_one_line(fake_openai):
    engine = ServedEngine.connect(fake_openai.url)
    fake_openai.stop()
    _, ends = _events(engine, _requests()[:2])
    for end in ends.values():
        assert isinstance(end, RowFailed) and "\n" not in str(end.error)
        assert f"The server at {fake_openai.url} could not answer with model 'fake-org/base-model'" in str(end.error)
        assert "ConnectError" in str(end.error)


def test_start_up_errors_are_one_line(fake_openai):
    gone = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(UserError, match="No server answers at") as unreachable:
        ServedEngine.connect(gone)
    assert gone in str(unreachable.value) and "\n" not in str(unreachable.value)
    with pytest.raises(UserError) as unknown:
        ServedEngine.connect(fake_openai.url, "other/model")
    message = str(unknown.value)
    assert fake_openai.url in message and "'other/model'" in message
    assert "it lists: fake-org/base-model, support-lora" in message
    with pytest.raises(UserError, match="ends in /v1"):
        ServedEngine.connect(fake_openai.root + "/api")


def test_adapters_trained_here_are_registered_with_the_server(fake_openai, tmp_path):
    engine = ServedEngine.connect(fake_openai.url)
    folder = SHIPPED / "adapter"
    engine.load_adapter("my adapter", folder)
    assert fake_openai.adapters["my adapter"] == str(folder.resolve())
    assert engine.adapters["my adapter"] == folder.resolve()
    result = engine.generate([GenerationRequest(plain_messages(QUESTION), "my adapter")], SETTINGS)[0]
    assert result.text.startswith("[my adapter]") and fake_openai.records[-1].model == "my adapter"
    newer = tmp_path / "v2"
    newer.mkdir()
    engine.load_adapter("my adapter", newer)  # a new version under a known name replaces the old one
    assert fake_openai.adapters["my adapter"] == str(newer)
    engine.unload_adapter("my adapter")
    assert "my adapter" not in fake_openai.adapters and "my adapter" not in engine.adapters


def test_a_server_without_runtime_lora_loading_says_how_to_start_it(fake_openai):
    fake_openai.runtime_lora = False
    engine = ServedEngine.connect(fake_openai.url)
    folder = (SHIPPED / "adapter").resolve()
    with pytest.raises(UserError) as refused:
        engine.load_adapter("voice", folder)
    message = str(refused.value)
    assert "\n" not in message and fake_openai.url in message
    assert f"vllm serve fake-org/base-model --enable-lora --max-lora-rank 16 --lora-modules voice={folder}" in message
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in message
    assert "voice" not in engine.adapters


def test_the_forgetting_check_needs_the_built_in_engine(fake_openai):
    with pytest.raises(UserError, match="forgetting check needs the built-in engine"):
        ServedEngine.connect(fake_openai.url).with_adapter("support-lora", lambda model, tokenizer: None)
