"""The demo model's reading lessons: answerable only from their context, and about nothing the sample data holds."""

from __future__ import annotations

import json
import re

from adapters import reading_lessons
from pipelines.prompts import rag_messages
from playground.config import SAMPLE_DATA


def test_every_answer_is_one_sentence_of_exactly_one_document_and_holds_the_fact():
    for lesson in reading_lessons.lessons(500, seed=11):
        holders = [text for _, text in lesson.chunks if lesson.answer in text.splitlines()]
        assert len(holders) == 1, lesson
        assert lesson.fact in lesson.answer
        assert lesson.answer not in lesson.question


def test_distractors_state_the_same_attribute_for_other_entities():
    """Most contexts hold the asked attribute more than once: the entity, not the attribute alone, picks the answer."""
    lessons = [lesson for lesson in reading_lessons.lessons(400, seed=12) if len(lesson.chunks) == 3]
    shared = 0
    for lesson in lessons:
        template_word = re.sub(r"[^a-z ]", "", lesson.answer.split(" ", 3)[-1].lower()).split()[0]
        shared += sum(template_word in text.lower() for _, text in lesson.chunks) > 1
    assert shared / len(lessons) > 0.5


def test_lessons_are_seeded_and_shaped_as_the_rag_prompt():
    first, again = reading_lessons.lessons(20, seed=3), reading_lessons.lessons(20, seed=3)
    assert first == again
    messages = first[0].messages(rag_messages)
    assert messages[:-1] == rag_messages(first[0].question, first[0].chunks)
    assert messages[-1] == {"role": "assistant", "content": first[0].answer}


def test_no_invented_name_is_a_name_of_the_sample_data():
    texts = [path.read_text() for path in (SAMPLE_DATA / "knowledge_base").iterdir()]
    texts += [(SAMPLE_DATA / "finetune" / "train.jsonl").read_text()]
    texts += [json.loads(line)["question"] for line in (SAMPLE_DATA / "eval" / "questions.jsonl").open()]
    names = set(re.findall(r"\b[A-Z][a-z]+\b", " ".join(texts)))
    generic = {"Blue", "Green", "Red"}  # color words: no fact hangs on them
    assert reading_lessons.invented_words() & names <= generic
