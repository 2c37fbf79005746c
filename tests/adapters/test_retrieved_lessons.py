"""Lessons posed as retrieval poses them: the question's own top-k chunks, a well-posed question, numbers swapped."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest

from adapters.document_lessons import sentences
from adapters.retrieved_lessons import retrieved_lessons
from pipelines.prompts import rag_messages

WORDS = [
    ("tent", "canyon rust", "aluminum poles", "family camping"),
    ("stove", "propane cylinder", "wind screens", "simmer control"),
    ("jacket", "taped seams", "pit zips", "storm hood"),
    ("headlamp", "red night mode", "lithium battery", "tilting bracket"),
]
CHUNKS = [
    (f"{kind}.md", " ".join(f"The Ridgeline {kind} comes with {w} for every trip." for w in extras) + " It ends here.")
    for kind, *extras in WORDS
]


def contexts(conversation) -> list[str]:
    prompt = conversation[0]["content"]
    return re.findall(r"\[\d\] [^:]+: (.*?)(?=\n\[\d\] |\n\nAnswer the question)", prompt, flags=re.S)


def test_each_lesson_is_the_questions_own_retrieval_answered_with_its_most_alike_sentence(word_embedder):
    cuts = [CHUNKS, list(reversed(CHUNKS))]
    found = retrieved_lessons(cuts, 40, random.Random(0), rag_messages, word_embedder, top_k=2)
    assert len(found.conversations) == 40 and found.asked >= 40
    assert found.asked == 40 + found.dropped + found.missed
    for conversation in found.conversations:
        question = conversation[0]["content"].split("\n")[0].removeprefix("Question: ")
        answer = conversation[-1]["content"]
        shown = contexts(conversation)
        assert len(shown) == 2 and sum(answer in text for text in shown) >= 1
        # Retrieval's choice, in its order: the chunks most like the question.
        texts = [text for _, text in CHUNKS]
        scores = word_embedder(texts) @ word_embedder([question])[0]
        shown_scores = word_embedder(shown) @ word_embedder([question])[0]
        assert np.allclose(shown_scores, sorted(scores, reverse=True)[:2])
        # Well posed: of the context's sentences, the answer is the one most like the question.
        candidates = [s for text in shown for s in sentences(text)]
        alike = word_embedder(candidates) @ word_embedder([question])[0]
        assert candidates[int(np.argmax(alike))] == answer


def test_vague_questions_are_dropped_not_taught(word_embedder):
    twins = [("a.md", "The Ridgeline tent comes in one color. The Ridgeline tent comes in one color today.")] * 2
    found = retrieved_lessons([twins], 10, random.Random(1), rag_messages, word_embedder, top_k=2, attempts=2)
    assert found.dropped > 0 and len(found.conversations) + found.dropped + found.missed == found.asked


def test_numbers_are_swapped_alike_in_question_context_and_answer(word_embedder):
    chunks = [
        ("summit.md", "The Summit 2 tent costs $249. The Summit 2 tent weighs 4 lb 2 oz without its stakes."),
        ("ember.md", "The Ember Mini stove costs $59. The Ember Mini stove boils a liter of water in 4 minutes."),
        ("support.md", "Pinecrest support answers the phone from 7 AM every weekday. Support replies within 2 days."),
    ]
    found = retrieved_lessons([chunks], 60, random.Random(2), rag_messages, word_embedder, top_k=2)
    answers = [c[-1]["content"] for c in found.conversations]
    assert answers and not [a for a in answers if "Summit 2" in a and "$249" in a]
    for conversation in found.conversations:
        numbers = re.findall(r"\d+", conversation[-1]["content"])
        assert all(n in conversation[0]["content"] for n in numbers)


def test_questions_that_do_not_retrieve_their_chunk_are_dropped(word_embedder):
    sentence = "The Ridgeline tent comes in one color for families."
    chunks = [("short.md", sentence), ("long.md", f"{sentence} Stakes, poles and a footprint are sold apart here.")]
    found = retrieved_lessons([chunks], 30, random.Random(3), rag_messages, word_embedder, top_k=1)
    assert found.missed > 0
    for conversation in found.conversations:
        assert len(contexts(conversation)) == 1 and conversation[-1]["content"] in contexts(conversation)[0]


def test_no_chunks_is_an_error(word_embedder):
    with pytest.raises(ValueError, match="no chunks"):
        retrieved_lessons([[]], 3, random.Random(0), rag_messages, word_embedder)
