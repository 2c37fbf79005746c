"""Reworded fine-tuning questions change the words around what is asked, never what is asked."""

from __future__ import annotations

import json
import random
import re

from adapters import rewording
from playground.config import SAMPLE_DATA

QUESTIONS = [
    "How much does the Summit 2 tent cost?",
    "What is the weight of the Basecamp 65 backpack?",
    "What is the warranty on the Granite Mid boots?",
    "When do I get paid for a trade-in?",
    "Tent warranty length at Pinecrest?",
]


def _kept(question: str) -> set[str]:
    """Names and numbers: the words a rewording must keep."""
    words = set(re.findall(r"\b(?:[A-Z][a-z]+|\d+)\b", question)) - {"How", "What", "When", "Tent"}
    return words


def test_rewordings_are_distinct_new_and_keep_every_name_and_number():
    rng = random.Random(0)
    for question in QUESTIONS:
        found = rewording.rewordings(question, 3, rng)
        assert len(found) == 3 and len(set(found)) == 3 and question not in found
        for text in found:
            assert _kept(question) <= set(re.findall(r"\b\w+\b", text)), (question, text)


def test_price_weight_and_warranty_questions_are_asked_in_another_frame_of_their_family():
    rng = random.Random(1)
    price = {rewording.reframed("How much does the Summit 2 tent cost?", rng) for _ in range(30)}
    assert price <= {f.format(s="the Summit 2 tent") for f in rewording.PRICE_FRAMES} and len(price) >= 4
    weight = rewording.reframed("What is the weight of the Basecamp 65 backpack?", rng)
    assert weight in {f.format(s="the Basecamp 65 backpack") for f in rewording.WEIGHT_FRAMES}
    assert rewording.reframed("When do I get paid for a trade-in?", rng) is None


def test_no_reworded_training_question_is_an_evaluation_question():
    from adapters.datasets import load_chat_jsonl
    from adapters.demo_model import reworded_examples

    train = load_chat_jsonl(SAMPLE_DATA / "finetune" / "train.jsonl")
    copies = reworded_examples(train, 3, seed=3)
    assert len(copies) == 3 * len(train)
    asked = {c.question.lower().rstrip("?!. ") for c in copies}
    lines = (SAMPLE_DATA / "eval" / "questions.jsonl").read_text().splitlines()
    evaluation = {json.loads(line)["question"].lower().rstrip("?!. ") for line in lines}
    assert not asked & evaluation
    by_line = {e.line: e for e in train}
    assert all(c.messages[-1] == by_line[c.line].messages[-1] for c in copies), "answers stay word for word"


def test_rewordings_leave_out_the_kind_after_a_model_name_and_say_who_asks():
    rng = random.Random(2)
    found = rewording.rewordings("How much does the Summit 2 tent cost?", 40, rng)
    assert any("tent" not in text for text in found)  # "the Summit 2", as people often say
    assert any(text.startswith(rewording._SITUATIONS) for text in found)
    assert all("Summit 2" in text for text in found)
    assert rewording._KIND_AFTER_MODEL.sub(r"\1", "Is the Trailhead 45 backpack waterproof?") == (
        "Is the Trailhead 45 waterproof?"
    )
