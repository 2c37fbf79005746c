"""The offline demo model: built from the sample data, cached, and trained to read, not to remember."""

from __future__ import annotations

import json
import random
import re

from adapters import demo_model
from pipelines.prompts import rag_messages

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

    again = start(settings, log=lambda message: None)
    assert "demo_model_s" in again.startup and again.startup["demo_model_s"] < 5
    assert list((settings.home / "models").glob("demo-*/build_info.json")) == info_files
