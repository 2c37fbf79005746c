"""The product pointed at a served generator (a fake vLLM): the four arms stream side by side from the right model
names, the page and the JSON say which server answered, closing cancels, a refused arm says why, and start-up and
the Fine-tune tab fail or degrade in one line."""

from __future__ import annotations

import re
import socket
from dataclasses import replace

import pytest
from fake_openai_server import FakeOpenAIServer
from haystack.dataclasses import ChatMessage

from adapters.demo_model import SHIPPED
from adapters.errors import UserError
from adapters.served import ServedEngine
from pipelines.components import EngineGenerator, Row
from playground.compare import ARMS, CompareOptions, CompareService
from playground.config import SAMPLE_DATA, Settings
from playground.finetune import FinetuneService, stats_rows
from playground.metrics import summary
from playground.runtime import start
from playground.ui.render import model_banner

QUESTION = "How much does the Summit 2 tent cost?"
BASE, ADAPTER = "fake-org/base-model", "support-lora"
DATA = SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl"


@pytest.fixture(scope="module")
def server():
    fake = FakeOpenAIServer().start()
    yield fake
    fake.stop()


def _settings(home, url: str, **changes) -> Settings:
    values = {"base_model": str(SHIPPED / "base"), "reranker": "none", "max_new_tokens": 40, "min_new_tokens": 6}
    return Settings(home=home, generator_url=url, **{**values, **changes})


@pytest.fixture(scope="module")
def served(home, server):
    """A runtime started in served mode with the sample data; the base model's tokenizer and config are the demo's."""
    return start(_settings(home, server.url))


@pytest.fixture
def fake(server):
    """The module's server with its log cleared; its switches and adapters are put back afterwards."""
    server.clear()
    adapters = dict(server.adapters)
    yield server
    server.adapters, server.word_delay_s, server.usage, server.runtime_lora = adapters, 0.01, True, True


def test_every_arm_streams_from_its_model_at_once_with_the_servers_counts(served, fake):
    texts_seen: dict[str, set[str]] = {arm: set() for arm in ARMS}
    for final in CompareService(served).stream(QUESTION):  # one state, updated and yielded after each event
        for arm, text in final.texts.items():
            texts_seen[arm].add(text)
    assert final.done and set(final.answers) == set(ARMS) and not final.errors
    assert fake.max_in_flight == 4, "the four arms' requests were in flight together"
    chunks = [chunk["content"] for chunk in final.chunks]
    assert chunks
    for arm, (uses_adapter, reads) in ARMS.items():
        assert len(texts_seen[arm]) > 2, f"{arm} grew over several deltas"
        model = ADAPTER if uses_adapter else BASE
        answer = final.answers[arm]
        assert answer["text"].startswith(f"[{model}]") and answer["adapter"] == (ADAPTER if uses_adapter else None)
        (record,) = [r for r in fake.records if r.model == model and ("Context:" in r.last_user) == reads]
        assert all(chunk in record.last_user for chunk in chunks) == reads, f"{arm}: the chunks in its prompt"
        assert answer["prompt_tokens"] == record.prompt_tokens
        assert answer["completion_tokens"] == record.completion_tokens
        assert answer["token_counts"] == "server" and answer["timing"] == "served"
        assert answer["ttft_s"] >= answer["retrieval_s"] + answer["prefill_s"] - 1e-9
    assert final.timing == "served"
    assert "all sent at once" in final.timing_note and "usage report" in final.timing_note


def test_the_page_and_the_json_name_the_server(served, fake):
    document = CompareService(served).compare(QUESTION, CompareOptions(arms=("rag", "finetuned"))).to_json()
    note = f"served by vLLM 0.9.9-fake at {fake.url}"
    assert document["model"] == {"base": BASE, "source": "served", "adapter": ADAPTER, "note": note}
    timing = document["timing"]
    assert timing["strategy"] == "served" and "the network and the server's queue" in timing["note"]
    assert served.model.path == str(SHIPPED / "base"), "what a fine-tune loads"
    banner = model_banner(served.model)
    assert "vLLM 0.9.9-fake" in banner and fake.url in banner and BASE in banner


def test_closing_the_comparison_closes_the_requests(served, fake):
    fake.word_delay_s = 0.05
    stream = CompareService(served).stream(QUESTION, CompareOptions(max_new_tokens=200))
    for state in stream:
        if any(state.texts.values()):
            break
    stream.close()
    fake.wait_idle()
    assert len(fake.records) == 4 and all(r.aborted and r.sent_words < r.planned_words for r in fake.records)


def test_an_arm_the_server_refuses_says_why_and_the_others_answer(served, fake):
    del fake.adapters[ADAPTER]  # as if the server had restarted without it
    answers = CompareService(served).compare(QUESTION).to_json()["answers"]
    assert answers["base"]["text"] and answers["rag"]["text"]
    for arm in ("finetuned", "hybrid"):
        error = answers[arm]["error"]
        assert fake.url in error and repr(ADAPTER) in error and "does not exist" in error and "\n" not in error


def test_time_alone_sends_the_arms_one_after_another(served, fake):
    service = CompareService(served)
    result = service.compare(QUESTION, CompareOptions(arms=("rag", "finetuned"), timing="sequential"))
    assert fake.max_in_flight == 1 and result.timing == "served-sequential"
    assert "one after another" in result.timing_note
    assert {a["timing"] for a in result.answers.values()} == {"served-sequential"}
    with pytest.raises(UserError, match="built-in engine"):
        service.compare(QUESTION, CompareOptions(timing="batched"))


def test_the_query_pipelines_generator_answers_through_the_server(served, fake):
    rows = [Row("rag", None, True), Row("finetuned", ADAPTER, False)]
    messages = [ChatMessage.from_user(f"Question: {QUESTION} Context: none")]
    out = EngineGenerator(served.engine).run(messages=messages, question=QUESTION, rows=rows)
    rag, finetuned = (reply.text for reply in out["replies"])
    assert rag.startswith(f"[{BASE}] Question:") and finetuned == f"[{ADAPTER}] {QUESTION}"


def test_start_up_errors_name_the_url_and_the_models(home, fake):
    with pytest.raises(UserError, match="it lists: fake-org/base-model, support-lora"):
        start(_settings(home, fake.url, generator_model="meta/other"))
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{free.getsockname()[1]}/v1"
    with pytest.raises(UserError, match=re.escape(f"No server answers at {gone}")):
        start(_settings(home, gone))


def test_an_adapter_folder_at_start_is_registered_or_the_error_says_how(home, fake):
    folder = (SHIPPED / "adapter").resolve()
    runtime = start(_settings(home, fake.url, adapter=str(folder)))
    assert runtime.model.adapter == "adapter" and fake.adapters["adapter"] == str(folder)
    del fake.adapters["adapter"]
    fake.runtime_lora = False
    expected = re.escape(f"--lora-modules adapter={folder}`") + ".*VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
    with pytest.raises(UserError, match=expected):
        start(_settings(home, fake.url, adapter=str(folder)))


def test_the_fine_tune_tab_with_and_without_the_base_models_files(served, fake):
    finetune = FinetuneService(served)
    try:
        assert finetune.validate(DATA).stats["max_tokens"] > 0, "lengths from the demo base model's tokenizer"
        assert ADAPTER in finetune.adapter_choices()
        finetune.ensure_loaded(ADAPTER)  # served by the server, in no registry: usable by all
    finally:
        finetune.jobs.close()
    bare = replace(served, engine=ServedEngine.connect(fake.url, base_model="nobody/uncached-model"))
    finetune = FinetuneService(bare)
    try:
        stats = finetune.validate(DATA).stats
        assert stats["count"] == 12 and "max_tokens" not in stats
        (length,) = [value for measure, value in stats_rows(stats) if measure == "Length per example"]
        assert "tokenizer is not available here" in length and "nobody/uncached-model" in length
        note = finetune.memory_note("quick demo")
        assert note.startswith("No memory estimate: the base model's config is not available here")
        assert "\n" not in note
    finally:
        finetune.jobs.close()


def test_the_summary_claims_nothing_about_tokens_nobody_counted():
    rag = {"latency_s": 2.0, "prompt_tokens": 0, "completion_tokens": 0, "token_counts": "none"}
    finetuned = {"latency_s": 0.5, "prompt_tokens": 0, "completion_tokens": 0, "token_counts": "none"}
    assert summary({"rag": rag, "finetuned": finetuned}) == "The fine-tuned model answered 1.5 s faster than RAG."
    counted = {name: {**answer, "token_counts": "server"} for name, answer in (("rag", rag), ("finetuned", finetuned))}
    assert summary(counted).endswith("and used as many tokens.")


def test_the_command_line_says_which_server_answered(home, fake, run_cli, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_GENERATOR_URL", fake.url)
    monkeypatch.setenv("PLAYGROUND_RERANKER", "none")
    done = run_cli(home, "compare", QUESTION, "--arms", "rag,finetuned")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Answered by: served by vLLM 0.9.9-fake at {fake.url}" in done.stdout
    assert {r.model for r in fake.records} == {BASE, ADAPTER}
