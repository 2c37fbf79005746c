"""Per-answer quality metrics against hand-computed values, and per-question retrieval scores."""

from __future__ import annotations

import pytest

from adapters.errors import UserError
from pipelines.embedder import resolve_embedder
from playground.answer_scores import ANSWER_METRICS, Scored, normalize_answer, retrieval_scores, score_answers


def _one(metric: str, answer: str, reference: str, fact: str | None = None, embedder: str | None = None) -> float:
    return score_answers([Scored(answer, reference, fact)], embedder, [metric])[metric][0]


def test_registry_order_and_descriptions():
    assert list(ANSWER_METRICS) == ["exact_match", "f1", "rouge_l", "semantic_similarity", "fact_hit"]
    for name, metric in ANSWER_METRICS.items():
        assert metric.name == name and metric.label and metric.how.endswith(".")


def test_squad_normalization_and_exact_match():
    assert normalize_answer("  The Cat,  sat (on) AN old mat! ") == "cat sat on old mat"
    assert normalize_answer("theory of a thesis") == "theory of thesis"  # articles only as whole words
    assert _one("exact_match", "The cat sat.", "cat  SAT") == 1.0
    assert _one("exact_match", "the cat sat down", "cat sat") == 0.0


def test_token_f1_by_hand():
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]: 2 shared, P 2/2, R 2/3,
    # F1 = 2 * 1 * 2/3 / (1 + 2/3) = (4/3) / (5/3) = 0.8
    assert _one("f1", "the cat sat", "a cat sat down") == pytest.approx(0.8)
    # bag of tokens: "cat cat" against "cat" shares min(2, 1) = 1 token, P 1/2, R 1/1 -> 2 * 0.5 / 1.5 = 2/3
    assert _one("f1", "cat cat", "cat") == pytest.approx(2 / 3)
    assert _one("f1", "dog", "cat") == 0.0
    assert _one("f1", "", "") == 1.0
    assert _one("f1", "The!", "") == 1.0  # both normalize to nothing
    assert _one("f1", "", "cat") == 0.0
    assert _one("f1", "cat", "") == 0.0


def test_rouge_l_by_hand():
    # reference [the cat sat on the mat] (6 tokens), answer [a cat was on the mat today] (7 tokens);
    # longest common subsequence: cat on the mat = 4, so P 4/7, R 4/6, F = 2PR/(P+R) = (32/42)/(52/42) = 8/13
    assert _one("rouge_l", "a cat was on the mat today", "the cat sat on the mat") == pytest.approx(8 / 13)
    # the Porter stemmer maps "cats" (over 3 letters) to "cat"
    assert _one("rouge_l", "Cats!", "cat") == pytest.approx(1.0)
    assert _one("rouge_l", "dog", "cat") == 0.0


def test_other_scripts_are_scored_by_their_words():
    """rouge-score's own tokenizer kept only [a-z0-9]: an answer in Chinese, identical to its reference, scored 0 on
    every metric; SQuAD's ASCII punctuation left 。 and ¿ in place."""
    same = ("帐篷的价格是四百元。", "帐篷的价格是四百元")
    assert normalize_answer(same[0]) == "帐 篷 的 价 格 是 四 百 元"
    assert [_one(metric, *same) for metric in ("exact_match", "f1", "rouge_l")] == [1.0, 1.0, 1.0]
    # "帐篷四百元": 5 of the reference's 9 characters, in order: P 5/5, R 5/9
    assert _one("f1", "帐篷四百元", same[1]) == pytest.approx(2 * (5 / 9) / (1 + 5 / 9))
    assert _one("rouge_l", "帐篷四百元", same[1]) == pytest.approx(2 * (5 / 9) / (1 + 5 / 9))
    assert _one("exact_match", "¿Cuánto cuesta?", "cuánto cuesta") == 1.0
    assert _one("rouge_l", "Der Preis beträgt 429 €", "Der Preis betrug 429 €") == pytest.approx(0.75)  # 3 of 4


@pytest.mark.parametrize(
    "text",
    [
        "The Summit 2 tent costs $429 -- returns within 45 days!",
        "running runners ran; e-mail: help@pinecrest.example (weekdays 9-5)",
        "UPPER lower MiXeD 3.14 x_y",
    ],
)
def test_english_is_tokenized_as_rouge_score_does(text):
    from nltk.stem import porter
    from rouge_score import tokenize

    from playground.answer_scores import RougeWords

    stemmer = porter.PorterStemmer()
    assert RougeWords(stemmer).tokenize(text) == tokenize.tokenize(text, stemmer)


def test_fact_hit():
    assert _one("fact_hit", "It ships to PARIS\nin two days.", "", fact="paris in two") == 1.0
    assert _one("fact_hit", "It ships to Lyon.", "", fact="Paris") == 0.0
    assert _one("fact_hit", "It ships to Paris.", "", fact=None) is None
    assert _one("fact_hit", "It ships to Paris.", "", fact="  ") is None


def test_semantic_similarity_needs_an_embedder():
    items = [Scored("a", "b", None), Scored("c", "d", None)]
    assert score_answers(items, None, ["semantic_similarity"]) == {"semantic_similarity": [None, None]}
    with pytest.raises(UserError, match="local folder"):
        score_answers(items, "sentence-transformers/all-MiniLM-L6-v2", ["semantic_similarity"])


def test_semantic_similarity_with_the_local_minilm():
    model = resolve_embedder(None).model
    reference = "The tent costs 349 dollars."
    items = [
        Scored(reference, reference, None),
        Scored("The price of the tent is $349.", reference, None),
        Scored("Penguins live in the southern hemisphere.", reference, None),
    ]
    identical, paraphrase, unrelated = score_answers(items, model, ["semantic_similarity"])["semantic_similarity"]
    assert identical == pytest.approx(1.0, abs=1e-4)  # a cosine as Haystack gives it: float noise, no clamping
    assert paraphrase > unrelated + 0.3


def test_all_metrics_aligned_with_items():
    items = [Scored("Paris", "paris", "Paris"), Scored("", "Lyon", None)]
    scores = score_answers(items, None)
    assert list(scores) == list(ANSWER_METRICS)
    assert scores["exact_match"] == [1.0, 0.0]
    assert scores["f1"] == [1.0, 0.0]
    assert scores["fact_hit"] == [1.0, None]
    assert score_answers([], None) == {name: [] for name in ANSWER_METRICS}


def test_unknown_metric_names_the_known_ones():
    with pytest.raises(UserError, match=r"bleu.*exact_match, f1, rouge_l, semantic_similarity, fact_hit"):
        score_answers([Scored("a", "a", None)], None, ["f1", "bleu"])


def test_retrieval_match_at_rank_two():
    retrieved = ["other.md", "docs/tents.md", "tents.md"]
    # first match at rank 2: MRR 1/2; recall@1 sees only other.md, recall@3 sees the match
    assert retrieval_scores(retrieved, "tents.md", 1) == (0.0, 0.5)
    assert retrieval_scores(retrieved, "tents.md", 3) == (1.0, 0.5)


def test_retrieval_without_a_match():
    assert retrieval_scores(["a.md", "b.md"], "tents.md", 2) == (0.0, 0.0)
    assert retrieval_scores([], "tents.md", 2) == (0.0, 0.0)
    assert retrieval_scores(["tents.md.bak", "mytents.md"], "tents.md", 2) == (0.0, 0.0)  # whole names only


def test_retrieval_compares_file_names_not_paths():
    assert retrieval_scores(["kb/docs/tents.md"], "tents.md", 1) == (1.0, 1.0)
    assert retrieval_scores(["tents.md"], "sample_data/tents.md", 1) == (1.0, 1.0)
    assert retrieval_scores(["C:\\kb\\tents.md"], "other/tents.md", 1) == (1.0, 1.0)
    with pytest.raises(ValueError):
        retrieval_scores(["tents.md"], "tents.md", 0)
