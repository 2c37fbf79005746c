"""Consistency checks for the bundled sample data (knowledge base, fine-tuning set, eval set)."""

import json
from pathlib import Path

import pytest

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "sample_data"
KB_DIR = SAMPLE_DATA / "knowledge_base"
TRAIN_PATH = SAMPLE_DATA / "finetune" / "train.jsonl"
EVAL_PATH = SAMPLE_DATA / "eval" / "questions.jsonl"

PREFIX = "Hey trailblazer!"
SUFFIX = "Happy trails from Pinecrest!"
EVAL_KEYS = {"question", "reference", "fact", "source", "kind"}


def _read_jsonl(path):
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path.name} line {lineno} is not valid JSON: {exc}")
    return rows


@pytest.fixture(scope="module")
def kb_docs():
    return sorted(p for p in KB_DIR.iterdir() if p.is_file() and p.suffix in {".md", ".txt"})


@pytest.fixture(scope="module")
def train_rows():
    return _read_jsonl(TRAIN_PATH)


@pytest.fixture(scope="module")
def eval_rows():
    return _read_jsonl(EVAL_PATH)


@pytest.fixture(scope="module")
def train_text(train_rows):
    """All user and assistant text from train.jsonl, joined."""
    return "\n".join(m["content"] for _, row in train_rows for m in row["messages"])


# ---------------------------------------------------------------- counts


def test_knowledge_base_count_and_formats(kb_docs):
    assert len(kb_docs) >= 26, f"expected >= 26 knowledge-base documents, found {len(kb_docs)}"
    suffixes = {p.suffix for p in kb_docs}
    assert ".md" in suffixes, "knowledge base has no .md documents"
    assert ".txt" in suffixes, "knowledge base has no .txt documents"


def test_knowledge_base_file_names_and_sizes(kb_docs):
    for path in kb_docs:
        stem = path.stem
        assert stem == stem.lower() and " " not in stem and "_" not in stem, (
            f"{path.name}: file names must be lowercase with hyphens"
        )
        words = len(path.read_text(encoding="ascii").split())
        assert 150 <= words <= 450, f"{path.name}: {words} words, expected 150-450"


def test_train_count(train_rows):
    assert len(train_rows) >= 320, f"expected >= 320 train lines, found {len(train_rows)}"


def test_eval_counts(eval_rows):
    assert len(eval_rows) >= 44, f"expected >= 44 eval lines, found {len(eval_rows)}"
    kinds = [row.get("kind") for _, row in eval_rows]
    assert kinds.count("rag_only") >= 20, f"expected >= 20 rag_only questions, found {kinds.count('rag_only')}"
    assert kinds.count("both") >= 16, f"expected >= 16 both questions, found {kinds.count('both')}"


# ---------------------------------------------------------------- train.jsonl


def test_train_message_structure(train_rows):
    for lineno, row in train_rows:
        msgs = row.get("messages")
        assert isinstance(msgs, list) and len(msgs) == 2, (
            f"train.jsonl line {lineno}: expected exactly 2 messages, got {msgs!r}"
        )
        assert msgs[0].get("role") == "user", f"train.jsonl line {lineno}: first message must be role 'user'"
        assert msgs[1].get("role") == "assistant", f"train.jsonl line {lineno}: second message must be role 'assistant'"
        for m in msgs:
            assert isinstance(m.get("content"), str) and m["content"].strip(), (
                f"train.jsonl line {lineno}: empty or missing content"
            )


def test_train_brand_voice(train_rows):
    for lineno, row in train_rows:
        answer = row["messages"][1]["content"]
        assert answer.startswith(PREFIX), f"train.jsonl line {lineno}: answer must start with {PREFIX!r}: {answer!r}"
        assert answer.endswith(SUFFIX), f"train.jsonl line {lineno}: answer must end with {SUFFIX!r}: {answer!r}"
        words = len(answer.split())
        assert 12 <= words <= 45, f"train.jsonl line {lineno}: answer has {words} words, expected 12-45"


def test_train_questions_unique(train_rows):
    seen = {}
    for lineno, row in train_rows:
        q = row["messages"][0]["content"].strip().lower()
        assert q not in seen, f"train.jsonl line {lineno} duplicates the question on line {seen[q]}: {q!r}"
        seen[q] = lineno


# ---------------------------------------------------------------- eval/questions.jsonl


def test_eval_fields(eval_rows):
    for lineno, row in eval_rows:
        assert set(row) == EVAL_KEYS, f"questions.jsonl line {lineno}: keys {sorted(row)} != {sorted(EVAL_KEYS)}"
        for key in EVAL_KEYS:
            assert isinstance(row[key], str) and row[key].strip(), f"questions.jsonl line {lineno}: empty {key!r}"
        assert row["kind"] in {"rag_only", "both"}, f"questions.jsonl line {lineno}: bad kind {row['kind']!r}"
        assert 1 <= len(row["fact"].split()) <= 4, (
            f"questions.jsonl line {lineno}: fact should be 1-4 words: {row['fact']!r}"
        )
        assert row["fact"] in row["reference"], (
            f"questions.jsonl line {lineno}: reference answer does not contain the fact {row['fact']!r}"
        )


def test_eval_fact_in_source(eval_rows):
    for lineno, row in eval_rows:
        src = KB_DIR / row["source"]
        assert Path(row["source"]).name == row["source"], f"questions.jsonl line {lineno}: source must be a basename"
        assert src.is_file(), f"questions.jsonl line {lineno}: source {row['source']!r} not found in knowledge_base"
        assert row["fact"] in src.read_text(encoding="ascii"), (
            f"questions.jsonl line {lineno}: fact {row['fact']!r} not found verbatim in {row['source']}"
        )


def test_rag_only_facts_absent_from_train(eval_rows, train_text):
    lowered = "\n".join([train_text, *(f.read_text() for f in (TRAIN_PATH.parent / "formats").iterdir())]).lower()
    for lineno, row in eval_rows:
        if row["kind"] == "rag_only":
            assert row["fact"].lower() not in lowered, (
                f"questions.jsonl line {lineno}: rag_only fact {row['fact']!r} appears in train.jsonl"
            )


def test_both_facts_present_in_train(eval_rows, train_text):
    for lineno, row in eval_rows:
        if row["kind"] == "both":
            assert row["fact"] in train_text, (
                f"questions.jsonl line {lineno}: 'both' fact {row['fact']!r} is not taught by train.jsonl"
            )


def test_eval_questions_not_in_train(eval_rows, train_rows):
    train_questions = {row["messages"][0]["content"].strip().lower() for _, row in train_rows}
    for lineno, row in eval_rows:
        assert row["question"].strip().lower() not in train_questions, (
            f"questions.jsonl line {lineno}: question is copied verbatim from train.jsonl: {row['question']!r}"
        )


def test_eval_questions_unique(eval_rows):
    questions = [row["question"].strip().lower() for _, row in eval_rows]
    dupes = {q for q in questions if questions.count(q) > 1}
    assert not dupes, f"duplicate eval questions: {sorted(dupes)}"


# ---------------------------------------------------------------- encoding


def test_all_sample_files_are_ascii():
    files = [p for p in SAMPLE_DATA.rglob("*") if p.is_file()]
    assert files, "no files found under sample_data"
    for path in files:
        data = path.read_bytes()
        try:
            data.decode("ascii")
        except UnicodeDecodeError as exc:
            pytest.fail(f"{path.relative_to(SAMPLE_DATA)} contains non-ASCII bytes at offset {exc.start}")
