"""Reading lessons posed as the RAG pipeline poses them: the sample documents cut small, a question worded as people
ask, the chunks the embedder retrieves for it, every number swapped.

The earlier lessons (`reading_lessons`, `document_lessons`) pick the distractors at random and ask in the sentence's
own words; a model trained on them found the asked product among real retrieved chunks but not the sentence asked
about ("What is the regular price of the Ridgeline 4 tent?" → "The Ridgeline 4 tent sleeps four people."): real
chunks state a dozen facts about one product, and retrieval puts the most alike chunks beside the right one.

Each lesson is kept only when it is well posed: the asked sentence is, of all the context's sentences, the one the
embedder finds most like the question. Without that test a third of the questions were vague ("What is the care
instructions?") and taught the model to answer with any sentence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from adapters.document_lessons import natural_question, number_pool, perturb_digits, sentences, synthesize_question
from adapters.reading_lessons import Chunk, RagMessages

Embed = Callable[[Sequence[str]], np.ndarray]  # texts → unit vectors, one row each (the product's embedder)


@dataclass
class _Cut:
    """The documents cut at one chunk size, with the chunks' vectors and (filled on use) their sentences'."""

    chunks: Sequence[Chunk]
    vectors: np.ndarray
    sentence_vectors: dict[int, tuple[list[str], np.ndarray | None]] = field(default_factory=dict)

    def sentences_of(self, index: int, embed: Embed) -> tuple[list[str], np.ndarray | None]:
        if index not in self.sentence_vectors:
            found = sentences(self.chunks[index][1])
            self.sentence_vectors[index] = (found, embed(found) if found else None)
        return self.sentence_vectors[index]


@dataclass(frozen=True)
class RetrievedLessons:
    conversations: list[list[dict[str, str]]]
    asked: int  # questions made, kept or not
    missed: int  # dropped: the question's own retrieval did not rank the asked chunk in the top k
    dropped: int  # ill-posed: another sentence of the context was more like the question


def retrieved_lessons(
    cuts: Sequence[Sequence[Chunk]],
    count: int,
    rng: random.Random,
    rag_messages: RagMessages,
    embed: Embed,
    top_k: int = 3,
    natural: float = 0.7,
    attempts: int = 3,
) -> RetrievedLessons:
    """`count` conversations (fewer when `attempts` × `count` questions do not give that many well-posed ones): the
    RAG prompt over the `top_k` chunks of one of `cuts` (the same documents cut at different sizes) that the embedder
    retrieves for a question about one sentence, answered with that sentence. A question that does not retrieve its
    chunk is dropped: put in by hand, the answer would stand where retrieval seldom puts it (on the sample questions
    the fact is in the first chunk four times in five), and the model would learn the wrong place to look. A share
    `natural` of the questions is worded as people ask (`natural_question`) where the sentence allows."""
    prepared = [_Cut(chunks, embed([text for _, text in chunks])) for chunks in cuts if chunks]
    if not prepared:
        raise ValueError("the documents have no chunks to learn reading from")
    pool = number_pool([text for _, text in prepared[0].chunks])
    plans = []
    for _ in range(count * attempts):
        cut = rng.randrange(len(prepared))
        chunks = prepared[cut].chunks
        while True:
            target = rng.randrange(len(chunks))
            if found := sentences(chunks[target][1]):
                break
        sentence = rng.choice(found)
        question = natural_question(sentence, rng) if rng.random() < natural else None
        plans.append((cut, target, sentence, question or synthesize_question(sentence, rng)))
    question_vectors = embed([plan[3] for plan in plans])
    conversations: list[list[dict[str, str]]] = []
    asked = missed = dropped = 0
    for (cut, target, sentence, question), vector in zip(plans, question_vectors, strict=True):
        if len(conversations) >= count:
            break
        asked += 1
        prepared_cut = prepared[cut]
        top = [int(i) for i in np.argsort(-(prepared_cut.vectors @ vector))[:top_k]]
        if target not in top:
            missed += 1
            continue
        if _most_alike(prepared_cut, top, vector, embed) != sentence:
            dropped += 1
            continue
        texts = perturb_digits([question, sentence, *(prepared_cut.chunks[i][1] for i in top)], rng, pool)
        context = [(prepared_cut.chunks[i][0], text) for i, text in zip(top, texts[2:], strict=True)]
        conversations.append([*rag_messages(texts[0], context), {"role": "assistant", "content": texts[1]}])
    return RetrievedLessons(conversations, asked, missed, dropped)


def _most_alike(cut: _Cut, chunk_indices: Sequence[int], question: np.ndarray, embed: Embed) -> str | None:
    best, score = None, -2.0
    for index in chunk_indices:
        found, vectors = cut.sentences_of(index, embed)
        if found and vectors is not None:
            place = int(np.argmax(vectors @ question))
            if float(vectors[place] @ question) > score:
                best, score = found[place], float(vectors[place] @ question)
    return best
