"""The offline demo model: trained to read from lessons that are not the sample data, kept, cached."""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace

from adapters import demo_model, reading_lessons
from adapters.datasets import IGNORE_INDEX, load_chat_jsonl
from pipelines.prompts import rag_messages
from playground.config import SAMPLE_DATA

FINETUNE = load_chat_jsonl(SAMPLE_DATA / "finetune" / "train.jsonl")
CHUNKS = [
    ("summit-2-tent.md", "The Summit 2 tent costs $249. The Summit 2 tent weighs 1.9 kg and sleeps two people."),
    ("returns.md", "Pinecrest accepts returns within 60 days. A return label costs $6 for exchanges."),
    ("support.txt", "Support answers the phone at 1-800-555-0142 from 7 AM every weekday."),
]


def corpus(finetune=(), embed=None) -> demo_model.DemoCorpus:
    """With `embed`, the last phase's cutter (CHUNKS at every size) and embedder too."""
    documents = sorted((SAMPLE_DATA / "knowledge_base").glob("summit-2-*"))  # digested; CHUNKS stand for its chunks
    extra = {"cut": lambda files, size, overlap: CHUNKS, "embed": embed, "embedder": "words"} if embed else {}
    return demo_model.DemoCorpus(documents, lambda files: CHUNKS, list(finetune), rag_messages, **extra)


def test_every_assistant_turn_is_labelled_and_nothing_else():
    from transformers import AutoTokenizer  # noqa: F401  (the tokenizer is built here, not downloaded)

    lesson = reading_lessons.lessons(1, seed=4, questions=3)[0]
    conversation = lesson.messages(rag_messages)
    tokenizer = demo_model.train_tokenizer([m["content"] for m in conversation] * 3, 400)
    ids, labels = demo_model.tokenize_turns(tokenizer, conversation)
    assert ids == tokenizer(tokenizer.apply_chat_template(conversation, tokenize=False))["input_ids"]
    taught = tokenizer.decode([t for t in labels if t != IGNORE_INDEX])
    answers = [m["content"] for m in conversation if m["role"] == "assistant"]
    assert taught == "".join(f"{answer}<|end|>" for answer in answers)


def test_copy_examples_say_a_span_twice_and_teach_only_the_second_saying():
    for ids, labels in demo_model.copy_examples(list(range(5, 60)), 50, random.Random(0)):
        taught = [t for t in labels if t != IGNORE_INDEX]
        span = [ids[0], *taught]
        assert ids[: len(span)] == span and ids[-len(span) :] == span
        assert len(labels) == len(ids) and labels[: len(ids) - len(taught)] == [IGNORE_INDEX] * (len(ids) - len(taught))


def test_demo_model_is_cached_and_says_what_it_is(runtime, settings):
    info_files = sorted((settings.home / "models").glob("demo-*/build_info.json"))
    assert [f.parent.name.split("-")[1] for f in info_files] == ["adapter", "base"]
    adapter, base = (json.loads(f.read_text()) for f in info_files)
    assert base["name"] == demo_model.DEMO_MODEL_NAME and adapter["name"] == demo_model.DEMO_ADAPTER_NAME
    assert adapter["adapter_training"]["examples"] >= 300 and adapter["base"] == base["key"]
    assert (info_files[0].parent / "adapter_config.json").exists()
    assert runtime.demo_build == {"base": base, "adapter": adapter}
    assert runtime.model.base == demo_model.DEMO_MODEL_NAME and runtime.model.is_demo
    # A second start finds the cache instead of training again.
    from playground.runtime import start

    again = start(settings)
    assert "demo_model_s" in again.startup and again.startup["demo_model_s"] < 5
    assert sorted((settings.home / "models").glob("demo-*/build_info.json")) == info_files


def test_the_build_trains_through_the_fine_tune_loop_and_its_loss_falls(tmp_path, monkeypatch, word_embedder):
    """The base model in its three plain-loop phases (copying, reading with checks on held-out lessons, then
    reading retrieved chunks), then the adapter as a user's fine-tune through `build_trainer` and `run_loop`,
    with the figures the build records."""
    from peft import PeftModel

    from adapters.jobs.events import Step
    from adapters.training import loop as trainer_loop

    models: list = []
    losses: list[list[float]] = []
    build_trainer, run_loop = trainer_loop.build_trainer, trainer_loop.run_loop

    def watched_build(model, *args, **kwargs):
        models.append(model)
        return build_trainer(model, *args, **kwargs)

    def watched_run(trainer, fit, eval_examples, pad_id, on_event, should_stop, resume_from=None):
        steps: list[float] = []
        losses.append(steps)

        def record(event) -> None:
            if isinstance(event, Step):
                steps.append(event.loss)
            on_event(event)

        return run_loop(trainer, fit, eval_examples, pad_id, record, should_stop, resume_from)

    monkeypatch.setattr(trainer_loop, "build_trainer", watched_build)
    monkeypatch.setattr(trainer_loop, "run_loop", watched_run)
    monkeypatch.setattr(demo_model, "SHIPPED", tmp_path / "kept")
    spec = replace(demo_model.DEMO_SIZES["tiny"], copy_steps=30, adapter_epochs=2.0)
    messages: list[str] = []
    built = demo_model.load_or_build(tmp_path / "home", corpus(FINETUNE[:32], word_embedder), spec, messages.append)

    # Copying and reading train in the builder's own loop; the adapter through the Trainer, as a user's fine-tune.
    assert len(models) == 1 and isinstance(models[0], PeftModel)
    base, adapter = built.info["base"], built.info["adapter"]
    assert list(base["phases"]) == ["copying", "reading", "retrieved"]
    retrieved = base["phases"]["retrieved"]
    assert retrieved["steps"] == 3 and list(retrieved["held_out_read"]) == ["3"] and math.isfinite(retrieved["loss"])
    # 3 steps of 4: 7 lessons over the retrieved chunks (60 %), 5 invented ones
    assert retrieved["lessons"] == base["lessons"]["retrieved from the documents"] == 7
    assert (
        retrieved["questions"]["asked"]
        == 7 + retrieved["questions"]["ill-posed"] + retrieved["questions"]["not retrieved"]
    )
    assert retrieved["layers"] == 4  # the tiny model's 2 layers, each followed by a copy (`grow_after`)
    copying, reading = base["phases"]["copying"], base["phases"]["reading"]
    assert set(copying) == {"steps", "loss", "formed", "every_token", "seconds"}
    assert copying["every_token"]["steps"] == 2 and math.isfinite(copying["every_token"]["loss"])
    assert set(reading) == {"steps", "loss", "seconds", "held_out_read"}
    assert copying["steps"] == 30 and not copying["formed"] and base["parameters"] > 0
    # From chance over the whole vocabulary (ln 600 ≈ 6.4) towards chance over the copied tokens (ln 64 ≈ 4.2).
    assert copying["loss"] < math.log(600) - 1.0, copying
    # Two curriculum levels of 2 steps each, then 2 on the documents' chunks and varied lessons.
    assert reading["steps"] == 6 and math.isfinite(reading["loss"])
    assert list(reading["held_out_read"]) == ["6"] and 0 <= reading["held_out_read"]["6"] <= 1
    assert base["lessons"]["plain invented, by level"] == [8, 8]
    assert len(losses[0]) == adapter["adapter_training"]["steps"]
    training = adapter["adapter_training"]
    fields = {"steps", "loss", "seconds", "examples", "reworded_copies", "asked_from_answers", "reading_lessons"}
    assert set(training) == fields
    # 32 examples, one rewording of each, those asked anew from their answers and 8 reading lessons in the voice,
    # in batches of 16, twice.
    asked = len(demo_model.answer_questions(FINETUNE[:32], random.Random(4)))
    assert training["asked_from_answers"] == asked > 0
    assert training["steps"] == 2 * math.ceil((32 + 32 + asked + 8) / 16) and training["examples"] == 32
    assert training["reworded_copies"] == 32 and training["reading_lessons"] == 8
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in built.adapter_path.iterdir()}
    # Nothing in a build names the folder it was built in: the kept copy travels with the repository.
    config = json.loads((built.adapter_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == demo_model.DEMO_MODEL_NAME
    assert str(tmp_path) not in "".join(p.read_text() for p in built.adapter_path.glob("*.json"))
    assert not (built.adapter_path / "README.md").exists()
    assert (built.base_path / "config.json").is_file() and not list(built.base_path.glob(".trainer"))
    assert "demo model: base model, copying step 30/30" in "\n".join(messages)
    assert "demo model: base model, reading step 6: " in "\n".join(messages)


def _tiny(**changes) -> demo_model.DemoSpec:
    return replace(demo_model.DEMO_SIZES["tiny"], copy_steps=1, reading_steps=1, adapter_epochs=0.05, **changes)


def test_a_kept_model_is_used_only_when_built_from_this_spec_and_data(tmp_path, monkeypatch):
    folder = tmp_path / "demo_weights"
    monkeypatch.setattr(demo_model, "SHIPPED", folder)
    spec, taught = _tiny(), corpus(FINETUNE[:16])
    for part in ("base", "adapter"):
        (folder / part).mkdir(parents=True)
        (folder / part / "build_info.json").write_text(json.dumps({"key": "built-from-something-else"}))
    assert demo_model.shipped(spec, taught) is None
    (folder / "base" / "build_info.json").write_text(json.dumps({"key": demo_model.base_key(spec, taught)}))
    (folder / "adapter" / "build_info.json").write_text(json.dumps({"key": demo_model.adapter_key(spec, taught)}))
    found = demo_model.load_or_build(tmp_path / "home", taught, spec)  # nothing is built: the kept copy fits
    assert found.base_path == folder / "base" and found.adapter_path == folder / "adapter"
    assert not (tmp_path / "home").exists()
    assert demo_model.base_key(replace(spec, seed=1), taught) != demo_model.base_key(spec, taught)


def test_new_fine_tuning_data_retrains_the_adapter_on_the_kept_base(tmp_path, monkeypatch):
    """The base model never sees the sample data: only the adapter depends on the fine-tuning set."""
    monkeypatch.setattr(demo_model, "SHIPPED", tmp_path / "demo_weights")
    spec = _tiny()
    first = demo_model.load_or_build(tmp_path / "home", corpus(FINETUNE[:16]), spec)
    changed = corpus(FINETUNE[16:32])
    assert demo_model.base_key(spec, changed) == first.info["base"]["key"]
    second = demo_model.load_or_build(tmp_path / "home", changed, spec, log=lambda m: None)
    assert second.base_path == first.base_path and second.adapter_path != first.adapter_path
    assert second.info["adapter"]["base"] == first.info["base"]["key"]


def test_rebuild_builds_anew_and_leaves_the_kept_model_alone_for_another_spec(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_model, "SHIPPED", tmp_path / "demo_weights")
    spec, taught = _tiny(), corpus(FINETUNE[:16])
    first = demo_model.load_or_build(tmp_path / "home", taught, spec)
    stamp = (first.base_path / "build_info.json").stat().st_mtime_ns
    again = demo_model.load_or_build(tmp_path / "home", taught, spec, rebuild=True)
    assert first.base_path == again.base_path and again.info["base"]["key"] == demo_model.base_key(spec, taught)
    assert (again.base_path / "build_info.json").stat().st_mtime_ns != stamp
    assert not (tmp_path / "demo_weights").exists()  # only the default spec replaces the kept copy


def test_the_voice_is_what_every_answer_shares_and_reading_lessons_carry_it(word_embedder):
    opening, closing = demo_model.voice(FINETUNE)
    assert (opening, closing) == ("Hey trailblazer! ", " Happy trails from Pinecrest!")
    spec = replace(demo_model.DEMO_SIZES["tiny"], adapter_reading_lessons=5)
    voiced = demo_model.voiced_lessons(corpus(FINETUNE, word_embedder), spec)
    assert len(voiced) == 5
    # Half posed over the documents' retrieved chunks (2 of 5), the rest invented.
    assert sum("summit-2-tent.md" in example.messages[0]["content"] for example in voiced) == 2
    assert len(demo_model.voiced_lessons(corpus(FINETUNE), spec)) == 5  # a corpus that cannot retrieve: all invented
    for example in voiced:
        prompt, answer = example.messages
        assert prompt["content"].startswith("Question: ") and "Context:\n[1] " in prompt["content"]
        assert answer["content"].startswith(opening) and answer["content"].endswith(closing)
        stated = answer["content"][len(opening) : -len(closing)]
        assert stated in prompt["content"]  # the sentence answered is the context's own
    assert demo_model.voiced_lessons(corpus(FINETUNE), replace(spec, adapter_reading_lessons=0)) == []
    assert demo_model.voice([]) == ("", "")
