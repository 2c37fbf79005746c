"""Sentence-level support: does a retrieved chunk, or a training example of the adapter, say what a sentence says?

Each answer is cut into sentences with the chunker's own sentence boundaries. Every sentence, every sentence of the
retrieved chunks and of the adapter's training answers is embedded with the retrieval embedder; similarity is the
cosine of two vectors. A sentence is supported by a chunk when its best cosine to one of the chunk's sentences
reaches the chunk threshold and every number it states appears in that chunk; else by a training example on the
same terms with the training threshold; else it is unsupported. The number check is there because embeddings barely
tell "45 days" from "60 days". Support means the evidence says the same, not that the model read it.

Nothing here loads a model: the embedder is passed in (the runtime's, or a test's fake).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from adapters.errors import UserError
from pipelines.splitter import _spans as sentence_spans  # the chunker's sentence boundaries: answers cut alike

CHUNK, TRAINING, NONE = "chunk", "training", "none"
DIGITS = 3  # similarities are compared as shown on the page: 0.700 meets a threshold of 0.70
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text, as rows (any scale: cosines are taken here)."""
        ...


@dataclass(frozen=True)
class SupportSettings:
    chunk_threshold: float
    training_threshold: float

    def __post_init__(self) -> None:
        for name, value in (
            ("PLAYGROUND_SUPPORT_CHUNK", self.chunk_threshold),
            ("PLAYGROUND_SUPPORT_TRAINING", self.training_threshold),
        ):
            if not 0 <= value <= 1:
                raise UserError(f"{name} is a cosine threshold between 0 and 1, got {value}")

    @property
    def method(self) -> str:
        """The method and thresholds in one line (Markdown), for the page."""
        return (
            "**Sentence-level support**: each sentence is embedded with the retrieval embedder and compared (cosine) "
            f"with the sentences of the retrieved chunks: **chunk [n]** at ≥ {self.chunk_threshold:.2f}; else with "
            f"the adapter's training answers: **training** (line N of its dataset) at ≥ {self.training_threshold:.2f}; "
            "else **unsupported**. Every number the sentence states must also be in that chunk or answer. Support "
            "means the evidence says the same, not that the model read it."
        )


@dataclass(frozen=True)
class Evidence:
    """Texts to compare sentences with: `texts[i]` is one chunk or training answer, cut into `sentences`."""

    texts: list[str]
    sentences: list[str]
    owners: list[int]  # per sentence, the index of the text it comes from
    vectors: np.ndarray  # per sentence, its unit vector
    numbers: list[set[str]]  # per text, the numbers it states

    @classmethod
    def of(cls, texts: Sequence[str], embedder: Embedder) -> Evidence:
        sentences, owners = [], []
        for index, text in enumerate(texts):
            for sentence in split_sentences(text):
                sentences.append(sentence)
                owners.append(index)
        vectors = _unit(embedder.embed(sentences)) if sentences else np.zeros((0, 0))
        return cls(list(texts), sentences, owners, vectors, [numbers(text) for text in texts])

    def __len__(self) -> int:
        return len(self.sentences)


@dataclass(frozen=True)
class TrainingSet:
    """An adapter's training answers (their lines in the dataset file) and their embedded sentences."""

    adapter: str
    file: str  # the dataset file's name, as the page shows it
    lines: list[int]  # per example, its line in the file
    evidence: Evidence


@dataclass(frozen=True)
class SentenceSupport:
    text: str
    mark: str  # CHUNK, TRAINING or NONE
    similarity: float | None  # of the evidence named; for an unsupported sentence, the closest seen (None: none)
    chunk: int | None = None  # 1-based, as the page numbers the chunks
    source: str = ""  # the chunk's file, or the training set's
    line: int | None = None  # the training example's line in its file
    evidence: str = ""  # the sentence of the chunk or training answer that matched best
    note: str = ""  # for an unsupported sentence: the closest evidence and why it did not count


@dataclass(frozen=True)
class AnswerSupport:
    arm: str
    sentences: list[SentenceSupport] = field(default_factory=list)
    note: str = ""  # no answer, an error, or no sentence

    def count(self, mark: str) -> int:
        return sum(1 for s in self.sentences if s.mark == mark)


@dataclass(frozen=True)
class SupportReport:
    answers: dict[str, AnswerSupport]
    method: str
    notes: list[str]  # what was compared: the chunks (or that there were none), the training set or why none

    def to_json(self) -> dict[str, Any]:
        """As the API and `compare --support` give it: per arm its sentences with their marks, and the counts."""
        return {
            "method": self.method,
            "notes": list(self.notes),
            "answers": {
                arm: {
                    "counts": {mark: found.count(mark) for mark in (CHUNK, TRAINING, NONE)},
                    "note": found.note,
                    "sentences": [asdict(sentence) for sentence in found.sentences],
                }
                for arm, found in self.answers.items()
            },
        }


def split_sentences(text: str) -> list[str]:
    return [text[start:end].strip() for start, end in sentence_spans(text or "")]


def numbers(text: str) -> set[str]:
    """The numbers a text states, thousands separators dropped: "1,299" and "1299" are one number."""
    return {re.sub(r",(?=\d{3}\b)", "", found) for found in _NUMBER.findall(text)}


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True)
class _Match:
    owner: int  # the chunk or example
    similarity: float
    sentence: str
    missing: frozenset[str]  # numbers the answer's sentence states that the chunk or example does not


def _matches(vector: np.ndarray, sentence: str, evidence: Evidence, threshold: float) -> list[_Match]:
    """Per chunk or example, its sentence closest to `vector`, best first: all at or above `threshold`, then the
    closest below it (what an unsupported sentence's note names)."""
    if not len(evidence):
        return []
    cosines = np.round(evidence.vectors @ vector, DIGITS)
    said = numbers(sentence)
    found: list[_Match] = []
    seen: set[int] = set()
    for row in np.argsort(-cosines, kind="stable"):  # ties: the earlier chunk or example first
        owner = evidence.owners[row]
        if owner in seen:
            continue
        seen.add(owner)
        missing = frozenset(said - evidence.numbers[owner])
        found.append(_Match(owner, float(cosines[row]), evidence.sentences[row], missing))
        if found[-1].similarity < threshold:
            break
    return found


def _first(matches: list[_Match], threshold: float) -> _Match | None:
    return next((m for m in matches if m.similarity >= threshold and not m.missing), None)


class SupportChecker:
    """Marks the sentences of answers against retrieved chunks and an adapter's training set."""

    def __init__(self, embedder: Embedder, settings: SupportSettings) -> None:
        self.embedder = embedder
        self.settings = settings

    def check(
        self,
        answers: Mapping[str, str],
        chunks: Sequence[Mapping[str, Any]],
        training: TrainingSet | None,
        training_note: str = "",
        errors: Mapping[str, str] | None = None,
    ) -> SupportReport:
        """`answers` by arm; `chunks` as the comparison lists them (content, source); `training_note` says why
        there is no training set (or what to know about it); `errors` are arms that could not answer."""
        errors = errors or {}
        sentences = {arm: split_sentences(text) for arm, text in answers.items() if arm not in errors}
        every = [s for found in sentences.values() for s in found]
        result: dict[str, AnswerSupport] = {arm: AnswerSupport(arm, note=f"No answer: {errors[arm]}") for arm in errors}
        if every:  # nothing is embedded for empty answers
            vectors = iter(_unit(self.embedder.embed(every)))
            evidence = Evidence.of([c.get("content") or "" for c in chunks], self.embedder)
            for arm, found in sentences.items():
                if found:
                    result[arm] = AnswerSupport(
                        arm, [self._mark(s, next(vectors), chunks, evidence, training) for s in found]
                    )
        for arm in sentences:
            result.setdefault(arm, AnswerSupport(arm, note="No answer to check."))
        result = {arm: result[arm] for arm in answers if arm in result}  # in the order asked
        notes = [] if chunks else ["No chunks were retrieved: no sentence can be supported by one."]
        return SupportReport(result, self.settings.method, [*notes, _training_line(training, training_note)])

    def _mark(
        self,
        sentence: str,
        vector: np.ndarray,
        chunks: Sequence[Mapping[str, Any]],
        evidence: Evidence,
        training: TrainingSet | None,
    ) -> SentenceSupport:
        settings = self.settings
        by_chunk = _matches(vector, sentence, evidence, settings.chunk_threshold)
        found = _first(by_chunk, settings.chunk_threshold)
        if found is not None:
            source = str(chunks[found.owner].get("source") or "")
            return SentenceSupport(
                sentence, CHUNK, found.similarity, chunk=found.owner + 1, source=source, evidence=found.sentence
            )
        by_example = (
            _matches(vector, sentence, training.evidence, settings.training_threshold) if training is not None else []
        )
        example = _first(by_example, settings.training_threshold)
        if example is not None and training is not None:
            line = training.lines[example.owner]
            return SentenceSupport(
                sentence, TRAINING, example.similarity, source=training.file, line=line, evidence=example.sentence
            )
        return self._unsupported(sentence, by_chunk[:1], by_example[:1], training)

    def _unsupported(
        self, sentence: str, chunk: list[_Match], example: list[_Match], training: TrainingSet | None
    ) -> SentenceSupport:
        """Unsupported, with the closest chunk and example and why neither counted."""
        notes, best = [], None
        if chunk:
            notes.append(_closest(chunk[0], self.settings.chunk_threshold, f"chunk [{chunk[0].owner + 1}]"))
            best = chunk[0].similarity
        if example and training is not None:
            where = f"training example (line {training.lines[example[0].owner]})"
            notes.append(_closest(example[0], self.settings.training_threshold, where))
            best = max(best or 0.0, example[0].similarity)
        return SentenceSupport(sentence, NONE, best, note="; ".join(notes))


def _closest(match: _Match, threshold: float, where: str) -> str:
    """'closest chunk [2]: 0.812, but it does not state 60' or 'closest chunk [2]: 0.412 (below 0.70)'."""
    closest = f"closest {where}: {match.similarity:.{DIGITS}f}"
    if match.similarity >= threshold and match.missing:
        return f"{closest}, but it does not state {', '.join(sorted(match.missing))}"
    return f"{closest} (below {threshold:.2f})"


def _training_line(training: TrainingSet | None, note: str) -> str:
    if training is None:
        return note or "No training set to compare with."
    examples = len(training.lines)
    text = f"Training examples: {examples} answers of adapter {training.adapter} from {training.file}"
    return f"{text} ({note})" if note else text
