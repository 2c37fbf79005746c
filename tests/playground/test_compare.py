"""The comparison service: retrieval from the right files, every JSON key, streaming states."""

from __future__ import annotations

import json

import pytest

from adapters.errors import UserError
from pipelines.retrieval_modes import DEFAULT_MODE, RetrievalMode
from playground.compare import CompareOptions
from playground.config import SAMPLE_DATA
from playground.metrics import difference, summary

ANSWER_KEYS = {
    "text",
    "adapter",
    "retrieval_s",
    "prefill_s",
    "latency_s",
    "ttft_s",
    "prompt_tokens",
    "completion_tokens",
    "tokens_per_s",
    "timing",
}


def test_json_has_every_key(service):
    result = service.compare("What is the price of the Ridgeline 4 tent?").to_json()
    json.dumps(result)  # serialisable as is
    assert result["question"] == "What is the price of the Ridgeline 4 tent?"
    assert set(result["model"]) >= {"base", "source", "adapter"}
    assert result["model"]["source"] == "demo"
    assert result["model"]["adapter"]
    assert result["chunks"] and all(set(c) >= {"source", "content", "score"} for c in result["chunks"])
    for name in ("base", "rag", "finetuned", "hybrid"):
        assert set(result["answers"][name]) >= ANSWER_KEYS, name
    assert result["answers"]["base"]["adapter"] is None and result["answers"]["rag"]["adapter"] is None
    assert result["answers"]["finetuned"]["adapter"] == result["model"]["adapter"]
    assert result["timing"]["strategy"] and result["timing"]["note"]
    assert result["summary"].endswith(".")
    assert "than RAG" in result["summary"] or "as RAG" in result["summary"]


def test_rag_prompt_contains_the_retrieved_chunks(service):
    result = service.compare("How much does the Summit 2 tent cost?").to_json()
    rag, finetuned = result["answers"]["rag"], result["answers"]["finetuned"]
    assert rag["prompt_tokens"] > finetuned["prompt_tokens"] + 100
    assert result["answers"]["hybrid"]["prompt_tokens"] == rag["prompt_tokens"]


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("What is the price of the Ridgeline 4 tent?", "ridgeline-4-tent.txt"),
        ("How much does the repair shop charge to resole boots?", "repair-service.md"),
        ("How many days do I have to return an item?", "return-policy.md"),
    ],
)
def test_chunks_come_from_the_right_sample_file(service, question, source):
    result = service.compare(question, CompareOptions(arms=("rag", "finetuned"), max_new_tokens=4)).to_json()
    sources = [c["source"] for c in result["chunks"]]
    assert source in sources, sources
    assert all((SAMPLE_DATA / "knowledge_base" / s).exists() for s in sources)
    assert all(c["content"] in (SAMPLE_DATA / "knowledge_base" / c["source"]).read_text() for c in result["chunks"])


def test_stream_fills_chunks_first_then_answers_grow(service):
    states = []
    for state in service.stream("What are the support hours?", CompareOptions(max_new_tokens=12)):
        states.append((bool(state.chunks), dict(state.texts), set(state.answers), state.done))
    assert states[0][0], "retrieved chunks arrive before any answer text"
    assert not states[0][2]
    assert states[-1][3] and states[-1][2] == {"base", "rag", "finetuned", "hybrid"}
    rag_lengths = [len(texts["rag"]) for _, texts, _, _ in states]
    assert len(set(rag_lengths)) > 2, "the RAG answer grew over several states"


def test_arms_can_be_switched_off(service):
    result = service.compare("Do you ship to Canada?", CompareOptions(arms=("rag", "finetuned"))).to_json()
    assert result["answers"]["hybrid"] is None and result["answers"]["base"] is None
    assert result["answers"]["rag"] and result["answers"]["finetuned"]


def test_base_control_is_the_model_alone(service):
    """The control reads nothing and uses no adapter: the same prompt as fine-tuned, without the adapter."""
    result = service.compare("Do you ship to Canada?", CompareOptions(arms=("base", "finetuned"))).to_json()
    base, finetuned = result["answers"]["base"], result["answers"]["finetuned"]
    assert base["retrieval_s"] == 0 and base["adapter"] is None
    assert base["prompt_tokens"] == finetuned["prompt_tokens"]
    assert result["chunks"] == [] and result["retrieval_s"] == 0, "no arm reads: nothing is retrieved"


@pytest.mark.parametrize("timing", ["interleaved", "sequential", "batched"])
def test_latency_counts_retrieval_and_each_arms_own_prefill(service, timing):
    """RAG pays for its retrieval and its long prompt; the fine-tuned arm pays for neither."""
    options = CompareOptions(top_k=10, max_new_tokens=4, timing=timing)
    answers = service.compare("How much does the Summit 2 tent cost?", options).to_json()["answers"]
    rag, finetuned, hybrid = answers["rag"], answers["finetuned"], answers["hybrid"]
    assert rag["retrieval_s"] > 0 and rag["retrieval_s"] == hybrid["retrieval_s"]
    assert finetuned["retrieval_s"] == 0 == answers["base"]["retrieval_s"]
    for arm in (rag, hybrid):
        assert arm["ttft_s"] >= arm["retrieval_s"] + arm["prefill_s"] - 1e-9
        assert arm["latency_s"] >= arm["ttft_s"]
    assert rag["prompt_tokens"] > 10 * finetuned["prompt_tokens"]
    assert rag["ttft_s"] > finetuned["ttft_s"]
    assert all(a["timing"] == timing for a in answers.values())


def test_an_adapter_that_fails_to_load_leaves_rag_and_base_answering(runtime, tmp_path):
    from playground.compare import CompareService

    def broken(name: str, workspace: str | None = None) -> None:
        raise OSError(f"{name}: adapter_model.safetensors is truncated")

    service = CompareService(runtime, attach=broken)
    result = service.compare("Do you ship to Canada?", CompareOptions(adapter="half-written", max_new_tokens=4))
    answers = result.to_json()["answers"]
    for arm in ("rag", "base"):  # answered: the tiny model's text may be as little as a space, but no error
        assert "error" not in answers[arm] and answers[arm]["completion_tokens"] >= 1, answers[arm]
    for arm in ("finetuned", "hybrid"):
        assert "half-written" in answers[arm]["error"] and "truncated" in answers[arm]["error"]
        assert result.texts[arm] == answers[arm]["error"]


def test_unknown_adapter_is_refused_with_its_name(service):
    with pytest.raises(ValueError, match="no-such-adapter"):
        service.compare("Hi?", CompareOptions(adapter="no-such-adapter"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (CompareOptions(arms=("rag", "magic")), "arms"),
        (CompareOptions(arms=()), "arms"),
        (CompareOptions(top_k=0), "top-k"),
        (CompareOptions(top_k=500), "top-k"),
        (CompareOptions(max_new_tokens=0), "max new tokens"),
        (CompareOptions(temperature=-1), "temperature"),
        (CompareOptions(timing="parallel"), "timing"),
    ],
)
def test_bad_options_are_refused_with_a_message(service, options, message):
    with pytest.raises(ValueError, match=message):
        service.compare("Hi?", options)


def test_decoding_settings_apply_to_every_pane(service):
    result = service.compare("Tell me about gift cards.", CompareOptions(max_new_tokens=3)).to_json()
    assert result["decoding"]["max_new_tokens"] == 3
    assert all(a["completion_tokens"] <= 3 for a in result["answers"].values())


def test_sampling_with_a_seed_is_repeatable(service):
    options = CompareOptions(temperature=1.0, seed=7, max_new_tokens=8)
    first = service.compare("What is the loyalty program?", options).to_json()
    second = service.compare("What is the loyalty program?", options).to_json()
    assert [a["text"] for a in first["answers"].values()] == [a["text"] for a in second["answers"].values()]


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001])
def test_bad_questions_get_a_clear_message(service, question):
    with pytest.raises(ValueError, match=r"question|Type"):
        service.compare(question)


def test_summary_sentence_in_plain_words():
    answers = {
        "rag": {"latency_s": 3.0, "prompt_tokens": 700, "completion_tokens": 50},
        "finetuned": {"latency_s": 1.6, "prompt_tokens": 540, "completion_tokens": 38},
    }
    assert difference("finetuned", "rag", answers) == (
        "the fine-tuned model answered 1.4 s faster and used 23 % fewer tokens than RAG"
    )
    assert summary(answers) == "The fine-tuned model answered 1.4 s faster and used 23 % fewer tokens than RAG."
    answers["finetuned"] = {"latency_s": 3.0, "prompt_tokens": 900, "completion_tokens": 50}
    assert summary(answers) == "The fine-tuned model answered as fast as RAG and used 27 % more tokens."


@pytest.mark.parametrize("mode", list(RetrievalMode))
def test_each_mode_scores_only_its_own_stages(service, mode):
    options = CompareOptions(arms=("rag", "finetuned"), max_new_tokens=4, retrieval=mode.value)
    result = service.compare("What is the price of the Ridgeline 4 tent?", options).to_json()
    assert result["retrieval"]["mode"] == mode.value
    assert result["retrieval"]["stages"] == list(mode.score_keys)
    assert result["chunks"] and "ridgeline-4-tent.txt" in {c["source"] for c in result["chunks"]}
    for chunk in result["chunks"]:
        scores = chunk["scores"]
        assert list(scores) == list(mode.score_keys)  # nothing for a stage that did not run
        assert scores[mode.score_keys[-1]] is not None  # the list the chunks were taken from
        assert any(scores[stage.value] is not None for stage in mode.stages)


@pytest.mark.parametrize(("old", "mode"), [("hybrid", RetrievalMode.FUSED), ("bm25", RetrievalMode.KEYWORD)])
def test_old_mode_names_still_work(service, old, mode):
    options = CompareOptions(arms=("rag",), max_new_tokens=2, retrieval=old)
    assert service.compare("How many days do I have to return an item?", options).retrieval["mode"] == mode.value


def test_the_tab_is_laid_out_from_the_service(service, runtime):
    setup = service.setup()
    assert setup.modes == tuple(RetrievalMode.choices()) and setup.mode is DEFAULT_MODE
    assert all("hybrid" not in label.lower() for label, _ in setup.modes)  # the hybrid is an answer pane
    assert setup.model == runtime.model and setup.top_k == runtime.settings.top_k
    assert setup.rerank_available == runtime.reranker.available


def test_top_k_and_file_filter(service):
    assert "return-policy.md" in service.sources() and len(service.sources()) >= 26
    options = CompareOptions(top_k=5, files=("return-policy.md", "faq.md"), max_new_tokens=4)
    result = service.compare("How much does the Summit 2 tent cost?", options).to_json()
    assert 1 <= len(result["chunks"]) <= 5
    assert {c["source"] for c in result["chunks"]} <= {"return-policy.md", "faq.md"}
    one = service.compare("How much does the Summit 2 tent cost?", CompareOptions(top_k=1)).to_json()
    assert len(one["chunks"]) == 1


def test_bad_retrieval_settings_are_refused(service):
    with pytest.raises(UserError, match="retrieval mode is 'magic'; expected one of fused, keyword, dense"):
        service.compare("hi", CompareOptions(retrieval="magic"))
    with pytest.raises(ValueError, match="top-k"):
        service.compare("hi", CompareOptions(top_k=-1))


def test_closing_the_comparison_frees_the_engine_at_once(service):
    """What happens when the browser leaves mid-answer: the next question starts within a second."""
    import time

    stream = service.stream("Tell me everything about tents.", CompareOptions(max_new_tokens=1024))
    state = next(state for state in stream if any(state.texts.values()))
    assert not state.done
    stream.close()
    started = time.perf_counter()
    states = service.stream("Hi?", CompareOptions(arms=("finetuned",), max_new_tokens=2))
    next(state for state in states if state.texts["finetuned"])
    states.close()
    assert time.perf_counter() - started < 1.0
