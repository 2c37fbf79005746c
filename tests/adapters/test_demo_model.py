"""The offline demo model: built from the sample data, cached, and trained to read, not to remember."""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import replace

from adapters import demo_model
from adapters.datasets import load_chat_jsonl
from pipelines.prompts import rag_messages
from playground.config import SAMPLE_DATA

CHUNKS = [
    ("summit-2-tent.md", "The Summit 2 tent costs $249. The Summit 2 tent weighs 1.9 kg and sleeps two people."),
    ("returns.md", "Pinecrest accepts returns within 60 days. A return label costs $6 for exchanges."),
    ("support.txt", "Support answers the phone at 1-800-555-0142 from 7 AM every weekday."),
]


def corpus() -> demo_model.DemoCorpus:
    return demo_model.DemoCorpus(CHUNKS, [], rag_messages)


def test_digits_are_replaced_consistently_across_context_and_answer():
    context, answer = demo_model.perturb_digits(["costs $249, not $249.", "costs $249"], random.Random(3))
    price = re.search(r"\$(\d+)", answer).group(1)
    assert price != "249" and len(price) == 3
    assert context == f"costs ${price}, not ${price}."


def test_reading_examples_answer_with_a_sentence_of_their_context():
    for conversation in demo_model.reading_examples(corpus(), 40, 3, random.Random(0)):
        prompt, answer = conversation[0]["content"], conversation[-1]["content"]
        assert answer in prompt, "the answer must be copyable from the context"
        question = prompt.split("\n")[0]
        for number in re.findall(r"\d+", question):
            # Only model numbers of names ("Summit 2") may appear; prices and the like never.
            assert re.search(rf"[A-Z][a-z]+ {number}\b", answer), (question, answer)


def test_short_passage_examples_stay_answerable():
    for conversation in demo_model.reading_examples(corpus(), 40, 2, random.Random(1), window=2):
        assert conversation[-1]["content"] in conversation[0]["content"]


def test_demo_model_is_cached_and_says_what_it_is(runtime, settings):
    info_files = list((settings.home / "models").glob("demo-*/build_info.json"))
    assert len(info_files) == 1
    info = json.loads(info_files[0].read_text())
    assert info["name"] == demo_model.DEMO_MODEL_NAME
    assert info["adapter_training"]["examples"] >= 300
    assert (info_files[0].parent / "adapter" / "adapter_config.json").exists()
    assert runtime.model.base == demo_model.DEMO_MODEL_NAME and runtime.model.is_demo
    # A second start finds the cache instead of training again.
    from playground.runtime import start

    again = start(settings)
    assert "demo_model_s" in again.startup and again.startup["demo_model_s"] < 5
    assert list((settings.home / "models").glob("demo-*/build_info.json")) == info_files


def test_the_build_trains_through_the_fine_tune_loop_and_its_loss_falls(tmp_path, monkeypatch):
    """Every weight of the base model in its three phases, then the adapter as a user's fine-tune: each through
    `build_trainer` and `run_loop`, with the figures the build has always recorded."""
    from peft import PeftModel
    from transformers import PreTrainedModel

    from adapters.jobs.events import Step
    from adapters.training import loop as trainer_loop

    models: list = []
    losses: list[list[float]] = []
    build_trainer, run_loop = trainer_loop.build_trainer, trainer_loop.run_loop

    def watched_build(model, *args, **kwargs):
        models.append(model)
        return build_trainer(model, *args, **kwargs)

    def watched_run(trainer, fit, eval_examples, pad_id, on_event, should_stop):
        steps: list[float] = []
        losses.append(steps)

        def record(event) -> None:
            if isinstance(event, Step):
                steps.append(event.loss)
            on_event(event)

        return run_loop(trainer, fit, eval_examples, pad_id, record, should_stop)

    monkeypatch.setattr(trainer_loop, "build_trainer", watched_build)
    monkeypatch.setattr(trainer_loop, "run_loop", watched_run)
    finetune = load_chat_jsonl(SAMPLE_DATA / "finetune" / "train.jsonl")[:32]
    spec = replace(demo_model.DEMO_SIZES["tiny"], copy_steps=30, adapter_epochs=2.0)
    messages: list[str] = []
    info = demo_model.build(tmp_path, demo_model.DemoCorpus(CHUNKS, finetune, rag_messages), spec, messages.append)

    assert len(models) == 4 and isinstance(models[3], PeftModel)
    assert all(isinstance(model, PreTrainedModel) and not isinstance(model, PeftModel) for model in models[:3])
    copying = losses[0]
    assert len(copying) == 30 and sum(copying[-5:]) / 5 < copying[0] - 1.0, copying
    assert list(info["base"]) == ["copying", "short passages", "whole chunks"]
    for phase in info["base"].values():
        assert set(phase) == {"steps", "loss", "seconds"} and math.isfinite(phase["loss"])
    assert info["base"]["copying"]["steps"] == 30
    assert set(info["adapter_training"]) == {"steps", "loss", "seconds", "examples"}
    assert info["adapter_training"]["steps"] == 4 and info["adapter_training"]["examples"] == 32  # 2 epochs, 16 a batch
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "adapter").iterdir()}
    assert (tmp_path / "base" / "config.json").is_file() and not (tmp_path / ".trainer").exists()
    assert "demo model: base model, copying step 30/30" in "\n".join(messages)


def test_a_kept_model_is_used_only_when_built_from_this_spec_and_corpus(tmp_path, monkeypatch):
    folder = tmp_path / "demo_weights"
    (folder / "base").mkdir(parents=True)
    (folder / "adapter").mkdir()
    monkeypatch.setattr(demo_model, "SHIPPED", folder)
    spec, taught = demo_model.DEMO_SIZES["tiny"], corpus()
    (folder / "build_info.json").write_text(json.dumps({"key": "built-from-something-else"}))
    assert demo_model.shipped(spec, taught) is None
    (folder / "build_info.json").write_text(json.dumps({"key": demo_model.build_key(spec, taught)}))
    found = demo_model.load_or_build(tmp_path / "home", taught, spec)  # nothing is built: the kept copy fits
    assert found.base_path == folder / "base" and not (tmp_path / "home").exists()
    assert demo_model.build_key(replace(spec, seed=1), taught) != demo_model.build_key(spec, taught)


def test_rebuild_builds_anew_and_leaves_the_kept_model_alone_for_another_spec(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_model, "SHIPPED", tmp_path / "demo_weights")
    spec = replace(demo_model.DEMO_SIZES["tiny"], copy_steps=1, window_steps=1, base_steps=1, adapter_epochs=0.05)
    taught = demo_model.DemoCorpus(CHUNKS, load_chat_jsonl(SAMPLE_DATA / "finetune" / "train.jsonl")[:16], rag_messages)
    first = demo_model.load_or_build(tmp_path / "home", taught, spec)
    again = demo_model.load_or_build(tmp_path / "home", taught, spec, rebuild=True)
    assert first.base_path == again.base_path and again.info["key"] == demo_model.build_key(spec, taught)
    assert not (tmp_path / "demo_weights").exists()  # only the default spec replaces the kept copy
