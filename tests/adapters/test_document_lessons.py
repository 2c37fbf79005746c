"""Reading lessons over the knowledge base: the answer is in the context, and no number of the documents survives."""

from __future__ import annotations

import random
import re

from adapters import document_lessons
from pipelines.prompts import rag_messages

CHUNKS = [
    ("summit-2-tent.md", "The Summit 2 tent costs $249. The Summit 2 tent weighs 1.9 kg and sleeps two people."),
    ("returns.md", "Pinecrest accepts returns within 60 days. A return label costs $6 for exchanges."),
    ("support.txt", "Support answers the phone at 1-800-555-0142 from 7 AM every weekday."),
]


def test_digits_are_replaced_consistently_across_context_and_answer():
    context, answer = document_lessons.perturb_digits(["costs $249, not $249.", "costs $249"], random.Random(3))
    price = re.search(r"\$(\d+)", answer).group(1)
    assert price != "249" and len(price) == 3
    assert context == f"costs ${price}, not ${price}."


def test_every_answer_is_a_sentence_of_its_context_and_questions_hold_no_asked_number():
    conversations = document_lessons.document_lessons(CHUNKS, 40, random.Random(0), rag_messages, questions=3)
    for conversation in conversations:
        context = conversation[0]["content"]
        assert [m["role"] for m in conversation] == ["user", "assistant"] * (len(conversation) // 2)
        for question, answer in zip(conversation[::2], conversation[1::2], strict=True):
            assert answer["content"] in context, "the answer must be copyable from the context"
            asked = question["content"].split("\n")[0]
            for number in re.findall(r"\d+", asked):
                # Only model numbers of names ("Summit 2") may appear; prices and the like never.
                assert re.search(rf"[A-Z][a-z]+ {number}\b", answer["content"]), (asked, answer)
        assert "$249" not in context or "$249" not in conversation[1]["content"]


def test_no_number_of_the_documents_is_taught_where_it_belongs():
    """A price may reappear by chance elsewhere, but the Summit 2 never costs $249 in a lesson."""
    conversations = document_lessons.document_lessons(CHUNKS, 200, random.Random(1), rag_messages, questions=2)
    said = [m["content"] for c in conversations for m in c if m["role"] == "assistant"]
    assert not [s for s in said if "Summit" in s and "$249" in s]
    assert not [s for s in said if "555-0142" in s]


def test_natural_questions_ask_about_the_sentence_subject_in_words_people_use():
    rng = random.Random(0)
    asked = {document_lessons.natural_question("The Summit 2 tent costs $249.", rng) for _ in range(40)}
    assert len(asked) >= 4 and all("the Summit 2 tent" in q and "249" not in q for q in asked)
    where = document_lessons.natural_question("The Denver store is at 2275 Aspen Row.", rng)
    assert where == "Where is the Denver store?"
    assert document_lessons.natural_question("The Ridgeline 4 tent uses three poles.", rng) == (
        "What does the Ridgeline 4 tent use?"
    )
    assert document_lessons.natural_question("The Summit 2 tent ships with eight stakes.", rng) == (
        "What does the Summit 2 tent ship with?"
    )


def test_natural_questions_never_hold_a_number_the_answer_could_state_and_skip_what_they_cannot_word():
    rng = random.Random(0)
    for sentence in ("Orders over $50 ship free.", "Every 100 points costs $5.", "It rains in April on most days."):
        assert document_lessons.natural_question(sentence, rng) is None, sentence
    assert document_lessons.natural_question("The manager decides whether a repair is covered.", rng) is None
