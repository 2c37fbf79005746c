"""`bench finetune --gpu`'s parts that run anywhere: examples of realistic length, the side process's figures (on the
CPU here), the report's ratios and targets. The figures themselves need a CUDA GPU."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from adapters.errors import UserError
from playground.bench import finetune
from playground.bench.finetune import long_examples, model_flops_per_token, parse_seq_lens


@pytest.fixture(scope="module")
def base(runtime) -> str:
    return runtime.model.path


def test_examples_are_as_long_as_asked_made_of_sample_answers(base):
    tokenizer = AutoTokenizer.from_pretrained(base)
    examples = long_examples(tokenizer, 3, 300, seed=0)
    for example in examples:
        rendered = tokenizer.apply_chat_template(list(example.messages), tokenize=False)
        assert 300 <= len(tokenizer(rendered, add_special_tokens=False)["input_ids"]) < 300 + 200
        assert example.messages[-1]["role"] == "assistant" and "\n\n" in example.messages[-1]["content"]


def test_one_side_reports_its_tokens_seconds_and_flops(base):
    lora, fit = finetune.QUICK_DEMO
    request = {
        "side": "transformers",
        "base_model": base,
        "lora": finetune.asdict(lora),
        "fit": finetune.asdict(finetune.replace(fit, batch_size=2, max_seq_length=128, eval_every=0)),
        "steps": 2,
        "length": 128,
        "device": "cpu",
    }
    found = finetune._run_side(request)
    assert found["tokens"] == 2 * 2 * 128  # every example cut to the maximum length
    assert found["seconds"] > 0 and found["parameters"] > 0 and found["gpu"] == "cpu"
    assert found["mfu"] is None and found["peak_gib"] == 0.0  # no GPU: no peak to compare against
    assert "peft" in found["versions"]


def test_model_flops_count_the_frozen_and_the_trained_weights_and_attention():
    assert model_flops_per_token(1000, 10, 2, 8, 16) == 4 * 1000 + 2 * 10 + 6 * 2 * 8 * 16


def test_the_report_gives_each_lengths_ratios_and_the_targets_at_the_longest(monkeypatch):
    def side(unsloth_rate: float, rate: float, peak: float, mfu: float | None):
        def figures(name: str) -> dict:
            chosen = unsloth_rate if name == "unsloth" else rate
            return {
                "seconds": 10.0,
                "tokens": chosen * 10,
                "peak_gib": peak if name == "unsloth" else 30.0,
                "mfu": mfu,
                "parameters": 1_235_814_400,
                "gpu": "NVIDIA H200",
                "versions": {"unsloth": "x"},
            }

        return figures

    lengths = {1024: side(36000, 20000, 4.9, 0.3), 2048: side(51200, 27800, 4.9, None)}
    by_length = {
        length: {
            "settings": finetune.BenchSettings("m", finetune.LoraSettings(), finetune.FitSettings(), "cuda"),
            "figures": {name: [make(name)] * 3 for name in ("unsloth", "transformers")},
        }
        for length, make in lengths.items()
    }
    report = finetune._gpu_report("random:llama-1b", by_length, steps=30, rounds=3)
    assert report["by_seq_len"]["1024"]["ratio"] == pytest.approx(1.8)
    assert report["ratio_at_longest"] == pytest.approx(51200 / 27800, abs=1e-3) and report["meets_target"]
    assert report["memory_ratio_at_longest"] == pytest.approx(4.9 / 30.0, abs=1e-3) and report["meets_memory_target"]
    assert (
        report["by_seq_len"]["1024"]["mfu"]["unsloth"] == 0.3 and report["by_seq_len"]["2048"]["mfu"]["unsloth"] is None
    )
    assert report["settings"]["gpu"] == "NVIDIA H200" and report["settings"]["versions"]["unsloth"] == "x"


@pytest.mark.parametrize("text", ["1024,x", "32", "1024,99999"])
def test_bad_lengths_are_one_line(text):
    with pytest.raises(UserError, match="--seq-len"):
        parse_seq_lens(text)


def test_lengths_default_to_1024_and_2048():
    assert parse_seq_lens(None) == (1024, 2048) and parse_seq_lens("512, 4096") == (512, 4096)
