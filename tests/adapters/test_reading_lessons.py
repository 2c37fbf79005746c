"""The demo model's reading lessons: answerable only from their context, and about nothing the sample data holds."""

from __future__ import annotations

import json
import random
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
    assert sum(lesson.rivals > 0 for lesson in lessons) / len(lessons) > 0.5
    for lesson in lessons:  # a rival states it with its own sentence, and the answer's value stays unique to it
        assert sum(lesson.answer in text.splitlines() for _, text in lesson.chunks) == 1


def test_the_curriculum_starts_with_one_fact_and_no_distractor_and_grows():
    """The first level a model reads is a copy of the only fact in its context; later levels add facts and rivals."""
    for lesson in reading_lessons.lessons(100, seed=14, distractors=(0, 0), varied=False, facts=(1, 1)):
        ((_, text),) = lesson.chunks
        assert text.split("\n\n")[-1].splitlines() == [lesson.answer], text  # the facts come last, one a line
    for lesson in reading_lessons.lessons(100, seed=15, distractors=(1, 1), varied=False, facts=(2, 4)):
        assert len(lesson.chunks) == 2
        for _, text in lesson.chunks:
            assert 2 <= len(text.split("\n\n")[-1].splitlines()) <= 4, text


def test_follow_ups_ask_about_sentences_of_the_same_context():
    for lesson in reading_lessons.lessons(100, seed=13, questions=4):
        assert 1 <= len(lesson.follow_ups) <= 3
        for ask in lesson.follow_ups:
            assert any(ask.answer in text.splitlines() for _, text in lesson.chunks)
            assert ask.fact in ask.answer
        turns = lesson.messages(rag_messages)
        assert len(turns) == 2 + 2 * len(lesson.follow_ups)
        assert turns[2]["content"] == reading_lessons.FOLLOW_UP.format(question=lesson.follow_ups[0].question)


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
    generic = {"Blue", "Green", "Red", "Gray", "Teal", "Gold", "Black"}  # color words: no fact hangs on them
    assert reading_lessons.invented_words() & names <= generic
    rng = random.Random(0)  # coined words are drawn per lesson: a large sample of them misses every name too
    assert not {reading_lessons.coined_word(rng) for _ in range(50_000)} & names
