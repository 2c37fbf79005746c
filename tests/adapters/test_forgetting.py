"""The forgetting check on a tiny Llama built here, with a LoRA adapter that is fresh (a no-op) or randomised."""

from __future__ import annotations

import json
import math

import pytest
import torch

from adapters import forgetting
from adapters.demo_model import train_tokenizer
from adapters.errors import UserError
from adapters.forgetting import ForgettingReport, GeneralSet
from playground.config import SAMPLE_DATA

GENERAL = SAMPLE_DATA / "general"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A model this small runs hundreds of times faster on one thread than on two of a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def general() -> GeneralSet:
    return forgetting.load_general_set(GENERAL)


@pytest.fixture(scope="module")
def tokenizer(general):
    questions = [question for question, _ in general.questions]
    return train_tokenizer([*general.texts, *questions], 400)


def tiny_llama(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]))


def randomise_lora(model) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


# ---------------------------------------------------------------- the shipped set


def test_shipped_general_set_is_big_enough_and_well_formed(general):
    assert general.name == "general"
    assert sum(len(text.split()) for text in general.texts) >= 1200
    assert len(general.texts) >= 8 and all("\n" not in text for text in general.texts)
    assert len(general.questions) == 24
    assert all(1 <= len(fact.split()) <= 3 for _, fact in general.questions)
    assert len({question for question, _ in general.questions}) == 24


def test_a_bad_questions_line_names_file_and_line(tmp_path):
    (tmp_path / "text.txt").write_text("One paragraph.\n\nAnother paragraph,\nwrapped.\n")
    good = json.dumps({"question": "Capital of France?", "fact": "Paris"})
    (tmp_path / "questions.jsonl").write_text(f"{good}\n\n{good[:-1]}\n")
    with pytest.raises(UserError, match=r"questions\.jsonl, line 3: not valid JSON"):
        forgetting.load_general_set(tmp_path)
    (tmp_path / "questions.jsonl").write_text(f'{good}\n{{"question": "Largest planet?"}}\n')
    with pytest.raises(UserError, match=r"questions\.jsonl, line 2, field 'fact'"):
        forgetting.load_general_set(tmp_path)
    (tmp_path / "questions.jsonl").write_text(f"{good}\n")
    loaded = forgetting.load_general_set(tmp_path)
    assert loaded.texts == ["One paragraph.", "Another paragraph, wrapped."]
    assert loaded.questions == [("Capital of France?", "Paris")]
    (tmp_path / "text.txt").unlink()
    with pytest.raises(UserError, match=r"text\.txt: not found"):
        forgetting.load_general_set(tmp_path)


# ---------------------------------------------------------------- perplexity


def test_perplexity_is_exp_of_the_models_own_mean_loss(tokenizer):
    model = tiny_llama(tokenizer)
    text = "The Moon orbits the Earth and raises the tides."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    value, tokens = forgetting.perplexity(model, tokenizer, [text])
    assert tokens == len(ids) - 1
    assert value == pytest.approx(math.exp(float(loss)), rel=1e-5)


def test_windows_score_every_token_once_and_padding_changes_nothing(tokenizer, general):
    model = tiny_llama(tokenizer)
    texts = general.texts[:5]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    alone, tokens = forgetting.perplexity(model, tokenizer, texts, window=48, batch_size=1)
    batched, tokens_batched = forgetting.perplexity(model, tokenizer, texts, window=48, batch_size=8)
    assert tokens == tokens_batched == sum(length - 1 for length in lengths)
    assert batched == pytest.approx(alone, rel=1e-5)


def test_perplexity_runs_in_eval_mode_and_restores_the_training_mode(tokenizer, general):
    model = with_lora(tiny_llama(tokenizer))  # LoRA dropout would make training-mode figures random
    randomise_lora(model)
    model.train()
    first = forgetting.perplexity(model, tokenizer, general.texts[:2])
    assert forgetting.perplexity(model, tokenizer, general.texts[:2]) == first
    assert model.training


# ---------------------------------------------------------------- adapter on and off


def test_a_fresh_adapter_changes_nothing_and_a_random_one_only_when_on(tokenizer, general):
    small = GeneralSet(general.texts[:3], general.questions[:3], "small")
    model = tiny_llama(tokenizer)
    plain, _ = forgetting.perplexity(model, tokenizer, small.texts)
    model = with_lora(model)
    run = forgetting.peft_runner(model, tokenizer)

    fresh = forgetting.check_forgetting(run, small)  # LoRA B starts at zero: the adapter adds nothing
    assert fresh.base_perplexity == pytest.approx(plain, rel=1e-5)
    assert fresh.adapter_perplexity == pytest.approx(plain, rel=1e-5)
    assert fresh.questions == 3 and fresh.base_correct == fresh.adapter_correct

    randomise_lora(model)
    changed = forgetting.check_forgetting(run, small)
    assert changed.base_perplexity == pytest.approx(plain, rel=1e-5)  # really off in the base pass
    # Really on in the adapter pass: far beyond rounding (a random tiny model's figures sit near the vocabulary size).
    assert abs(changed.perplexity_change) > 1e-3
    with torch.no_grad():
        on, tokens = forgetting.perplexity(model, tokenizer, small.texts)
    assert changed.adapter_perplexity == pytest.approx(on, rel=1e-5) and changed.tokens == tokens


def test_facts_count_case_insensitively_per_state(monkeypatch):
    questions = [("Capital of France?", "Paris"), ("Days in a leap year?", "366"), ("Largest ocean?", "Pacific")]
    answers = {
        "base": ["It is PARIS.", "A leap year has 365 days.", "The Pacific\nOcean"],
        "adapter": ["paris", "Hey trailblazer! No idea.", "Atlantic"],
    }
    figures = {"base": (10.0, 500), "adapter": (13.8, 500)}
    monkeypatch.setattr(forgetting, "perplexity", lambda model, tokenizer, texts: figures[model])
    monkeypatch.setattr(forgetting, "fact_answers", lambda model, tokenizer, questions: answers[model])
    calls = []

    def run(adapter_on, task):
        calls.append(adapter_on)
        return task("adapter" if adapter_on else "base", None)

    report = forgetting.check_forgetting(run, GeneralSet(["text"], questions))
    assert sorted(calls) == [False, True]
    assert (report.base_correct, report.adapter_correct, report.questions) == (2, 1, 3)
    assert report.perplexity_change == pytest.approx(0.38)
    assert report.sentence == (
        "On general text the adapter's perplexity rose 38 % (10.0 → 13.8 over 500 tokens); "
        "on 3 general questions it was right once, the base model 2."
    )
    assert report.to_json()["sentence"] == report.sentence and report.to_json()["base_correct"] == 2


# ---------------------------------------------------------------- the sentence


def report(base: float, adapter: float, base_correct: int = 11, adapter_correct: int = 9) -> ForgettingReport:
    return ForgettingReport(base, adapter, 2310, base_correct, adapter_correct, 24, 1.5)


def test_sentence_says_rose_fell_or_stayed_the_same():
    assert report(12.1, 16.7).sentence == (
        "On general text the adapter's perplexity rose 38 % (12.1 → 16.7 over 2,310 tokens); "
        "on 24 general questions it was right 9 times, the base model 11."
    )
    assert report(20.0, 15.0, 9, 12).sentence == (
        "On general text the adapter's perplexity fell 25 % (20.0 → 15.0 over 2,310 tokens); "
        "on 24 general questions it was right 12 times, the base model 9."
    )
    assert report(12.1, 12.18, 10, 10).sentence == (
        "On general text the adapter's perplexity stayed the same (within 1 %): 12.1 → 12.2 over 2,310 tokens; "
        "on 24 general questions it was right as often as the base model (10)."
    )
    assert report(1500.0, 1800.0).sentence.startswith("On general text the adapter's perplexity rose 20 % (1,500.0 →")
    as_json = report(12.1, 16.7).to_json()
    assert set(as_json) >= {"base_perplexity", "adapter_perplexity", "tokens", "questions", "seconds"}
    assert as_json["perplexity_change"] == pytest.approx(16.7 / 12.1 - 1)


# ---------------------------------------------------------------- answers


def test_fact_answers_gives_one_string_per_question_and_restores_padding_side(tokenizer, general):
    model = tiny_llama(tokenizer)
    tokenizer.padding_side = "right"
    questions = general.questions[:5]
    answers = forgetting.fact_answers(model, tokenizer, questions, max_new_tokens=6, batch_size=4)
    assert len(answers) == 5 and all(isinstance(answer, str) for answer in answers)
    assert tokenizer.padding_side == "right"
    assert not any("<|" in answer for answer in answers)  # special tokens are decoded away
