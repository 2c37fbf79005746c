"""How good one answer is against its reference, and how well one question's retrieval found the answer's file.

Each answer metric is a class registered in `ANSWER_METRICS` under its column name; `score_answers` runs them over
many answers at once, so a metric that loads a model (semantic similarity) embeds them in one batch. Nothing here
loads a model or a heavy library at import: ROUGE (nltk) and the embedder load on first use.
"""

from __future__ import annotations

import re
import string
import unicodedata
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from haystack import Document
from haystack.components.evaluators import AnswerExactMatchEvaluator, DocumentMRREvaluator, DocumentRecallEvaluator

from adapters.errors import UserError

if TYPE_CHECKING:
    from haystack.components.evaluators import SASEvaluator
    from rouge_score.rouge_scorer import RougeScorer


@dataclass(frozen=True)
class Scored:
    """What one metric needs per question."""

    answer: str
    reference: str
    fact: str | None


class AnswerMetric(ABC):
    name: ClassVar[str]  # the column name
    label: ClassVar[str]  # shown in tables
    how: ClassVar[str]  # one sentence: how it is measured and by which library

    @abstractmethod
    def score(self, items: Sequence[Scored], embedder_model: str | None) -> list[float | None]:
        """One score per item, in order; None where the metric does not apply to that item."""


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)
# Chinese and Japanese are written without spaces: each of their characters is a word of its own (as MLQA's
# evaluation segments Chinese), or a whole sentence would be one word that matches only when identical.
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_UNSPACED_WORDS = re.compile(f"[{_UNSPACED}]|[^{_UNSPACED}]+")


def _words(text: str) -> list[str]:
    """The white-space separated words of `text`, Chinese and Japanese characters one word each."""
    return [piece for word in text.split() for piece in _UNSPACED_WORDS.findall(word)]


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or (char > "\x7f" and unicodedata.category(char).startswith("P"))


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalization: lowercase, punctuation removed, articles (a, an, the) removed, whitespace
    collapsed, in that order. Extended for other languages as MLQA's evaluation does (English text is normalized
    exactly as SQuAD's script does): every Unicode punctuation mark goes (。, ¿, «), and Chinese and Japanese
    characters are single words."""
    kept = "".join(char for char in text.lower() if not _is_punctuation(char))
    return " ".join(_words(_ARTICLES.sub(" ", kept)))


def token_f1(answer: str, reference: str) -> float:
    """Bag-of-tokens F1 of the normalized answer against the normalized reference."""
    # f1_score of the SQuAD v1.1 evaluation script (evaluate-v1.1.py), with SQuAD v2.0's rule for empty answers.
    predicted, expected = normalize_answer(answer).split(), normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)  # 1 when both are empty, 0 when only one is
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


class ExactMatch(AnswerMetric):
    name = "exact_match"
    label = "Exact match"
    how = (
        "1 when the answer equals the reference once both are SQuAD-normalized (lowercase, no punctuation, "
        "no articles, single spaces), compared by Haystack's AnswerExactMatchEvaluator."
    )

    def score(self, items: Sequence[Scored], embedder_model: str | None) -> list[float | None]:
        if not items:  # the evaluator refuses empty lists
            return []
        result = AnswerExactMatchEvaluator().run(
            ground_truth_answers=[normalize_answer(item.reference) for item in items],
            predicted_answers=[normalize_answer(item.answer) for item in items],
        )
        return [float(match) for match in result["individual_scores"]]


class TokenF1(AnswerMetric):
    name = "f1"
    label = "Token F1"
    how = (
        "The harmonic mean of the share of the answer's words found in the reference and the share of the "
        "reference's words found in the answer, after SQuAD normalization, as the SQuAD v1.1 script computes it."
    )

    def score(self, items: Sequence[Scored], embedder_model: str | None) -> list[float | None]:
        return [token_f1(item.answer, item.reference) for item in items]


class RougeWords:
    """rouge-score's tokenizer for every script: its own keeps only [a-z0-9] runs, so "beträgt" became "betr gt"
    and a Chinese answer no word at all (ROUGE-L 0 against an identical reference). This one splits on what is
    not a letter or digit in any script, Chinese and Japanese characters one word each, and stems as rouge-score
    does (words over 3 characters); on ASCII text its words are rouge-score's."""

    def __init__(self, stemmer: Any) -> None:
        self.stemmer = stemmer

    def tokenize(self, text: str) -> list[str]:
        words = _words("".join(char if char.isalnum() else " " for char in text.lower()))
        return [self.stemmer.stem(word) if len(word) > 3 else word for word in words]


@lru_cache(maxsize=1)
def _rouge_scorer() -> RougeScorer:
    # Imported here: rouge_score imports nltk, which takes over a second. Only rougeLsum's sentence splitting reads
    # nltk data (punkt); rougeL with the Porter stemmer is pure code and never downloads anything.
    from nltk.stem import porter
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=RougeWords(porter.PorterStemmer()))


class RougeL(AnswerMetric):
    name = "rouge_l"
    label = "ROUGE-L"
    how = (
        "The F-measure of the longest common word subsequence of answer and reference (words lowercased and "
        "stemmed; Chinese and Japanese characters one word each), computed by Google's rouge-score package."
    )

    def score(self, items: Sequence[Scored], embedder_model: str | None) -> list[float | None]:
        scorer = _rouge_scorer()
        return [scorer.score(item.reference, item.answer)["rougeL"].fmeasure for item in items]


@lru_cache(maxsize=2)
def _sas_evaluator(model: str) -> SASEvaluator:
    """The evaluator with its model loaded, once per process and model folder."""
    from haystack.components.evaluators import SASEvaluator  # imports sentence-transformers (seconds)

    # SASEvaluator has no local_files_only switch: the model must be a local folder (checked by the caller), which
    # transformers and sentence-transformers load without the hub; token=None sends no Hugging Face token.
    evaluator = SASEvaluator(model=model, token=None)  # type: ignore[arg-type]
    evaluator.warm_up()
    return evaluator


class SemanticSimilarity(AnswerMetric):
    name = "semantic_similarity"
    label = "Semantic similarity"
    how = (
        "The cosine similarity of the embedding model's vectors of answer and reference, computed by Haystack's "
        "SASEvaluator."
    )

    def score(self, items: Sequence[Scored], embedder_model: str | None) -> list[float | None]:
        if embedder_model is None:
            return [None] * len(items)
        if not items:  # SASEvaluator answers an empty batch with one score
            return []
        if not Path(embedder_model).is_dir():
            raise UserError(
                f"embedder {embedder_model}: not a local folder; semantic similarity only loads a local model"
            )
        result = _sas_evaluator(embedder_model).run(
            ground_truth_answers=[item.reference for item in items],
            predicted_answers=[item.answer for item in items],
        )
        return [float(similarity) for similarity in result["individual_scores"]]  # as given: cosines may dip below 0


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


class FactHit(AnswerMetric):
    name = "fact_hit"
    label = "Fact hit"
    how = "1 when the question's fact appears in the answer, ignoring case and line breaks; plain string search."

    def score(self, items: Sequence[Scored], embedder_model: str | None) -> list[float | None]:
        return [
            float(_folded(item.fact) in _folded(item.answer)) if item.fact and item.fact.strip() else None
            for item in items
        ]


ANSWER_METRICS: dict[str, AnswerMetric] = {
    metric.name: metric for metric in (ExactMatch(), TokenF1(), RougeL(), SemanticSimilarity(), FactHit())
}


def score_answers(
    items: Sequence[Scored], embedder_model: str | None, metrics: Sequence[str] | None = None
) -> dict[str, list[float | None]]:
    """Every (or the named) metric's scores, one list per metric, aligned with items."""
    names = list(ANSWER_METRICS) if metrics is None else list(metrics)
    unknown = [name for name in names if name not in ANSWER_METRICS]
    if unknown:
        raise UserError(f"unknown answer metric {', '.join(unknown)}: choose from {', '.join(ANSWER_METRICS)}")
    return {name: ANSWER_METRICS[name].score(items, embedder_model) for name in names}


def _file_name(path: str) -> str:
    return re.split(r"[\\/]", path.strip())[-1]


def retrieval_scores(retrieved_sources: Sequence[str], source: str, k: int) -> tuple[float, float]:
    """(recall@k, MRR) for one question whose answer is in file `source`: a retrieved chunk matches when its source
    file name (the last path component, so 'docs/a.md' matches 'a.md') equals `source`'s file name. recall@k is 1.0
    when any of the first k chunks match (one relevant file), MRR is 1/rank of the first match (0 when none)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    wanted = _file_name(source)
    if not wanted or not retrieved_sources:  # Haystack would score these 0 too, with a logged warning
        return 0.0, 0.0
    # Haystack's evaluators compare a meta field, so each chunk becomes a Document holding only its file name.
    truth = [[Document(meta={"file": wanted})]]
    retrieved = [Document(meta={"file": _file_name(name)}) for name in retrieved_sources]
    recall = DocumentRecallEvaluator(mode="single_hit", document_comparison_field="meta.file").run(
        ground_truth_documents=truth, retrieved_documents=[retrieved[:k]]
    )
    mrr = DocumentMRREvaluator(document_comparison_field="meta.file").run(
        ground_truth_documents=truth, retrieved_documents=[retrieved]
    )
    return float(recall["individual_scores"][0]), float(mrr["individual_scores"][0])
