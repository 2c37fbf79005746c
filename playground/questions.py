"""Question sets for evaluation: JSONL (one object per line) or CSV (a header row), each question with its reference
answer and, optionally, a fact the answer must contain, the file that holds the answer and a kind to group by.

Every problem is a `UserError` naming the file, the line and the field, so that a person can fix it at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import UserError
from adapters.jsonl import objects

REQUIRED = ("question", "reference")
OPTIONAL = ("fact", "source", "kind")
ALIASES = {"answer": "reference"}  # the field's earlier name, still read
MAX_QUESTIONS = 5000
FORMAT_HINT = "JSONL or CSV with question, reference and optional fact, source, kind"


@dataclass(frozen=True)
class EvalItem:
    question: str
    reference: str
    fact: str | None = None  # a short string the answer must contain
    source: str | None = None  # the file that holds the answer: retrieval is scored against it
    kind: str = ""  # a group for the summary (the sample set: rag_only, both)
    line: int = 0  # where it was read, for messages


@dataclass(frozen=True)
class QuestionSet:
    name: str
    items: list[EvalItem]
    sha256: str  # of the file's bytes: a stored run names exactly what it asked


def _item(record: dict[str, object], where: str, line: int) -> EvalItem:
    for old, new in ALIASES.items():
        if record.get(new) in (None, "") and old in record:
            record = {**record, new: record[old]}
    values: dict[str, str] = {}
    for field in (*REQUIRED, *OPTIONAL):
        value = record.get(field)
        if value is None or value == "":
            if field in REQUIRED:
                raise UserError(f"{where}, line {line}: missing or empty field '{field}'")
            continue
        if not isinstance(value, str):
            raise UserError(f"{where}, line {line}: field '{field}' must be text, got {type(value).__name__}")
        if field in REQUIRED and not value.strip():
            raise UserError(f"{where}, line {line}: missing or empty field '{field}'")
        values[field] = value.strip()
    return EvalItem(
        question=values["question"],
        reference=values["reference"],
        fact=values.get("fact"),
        source=values.get("source"),
        kind=values.get("kind", ""),
        line=line,
    )


def _jsonl(text: str, where: str) -> list[EvalItem]:
    return [_item(record, where, line) for line, record in objects(text, where)]


def _csv(text: str, where: str) -> list[EvalItem]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [(name or "").strip().lower() for name in reader.fieldnames or []]
    if not columns:
        raise UserError(f"{where}: no header row ({FORMAT_HINT})")
    for field in REQUIRED:
        if field not in columns and not any(ALIASES.get(c) == field for c in columns):
            raise UserError(f"{where}, line 1: no '{field}' column (found: {', '.join(c for c in columns if c)})")
    reader.fieldnames = columns
    items = []
    try:
        for row in reader:
            line = reader.line_num
            if None in row:  # more cells than the header has columns
                raise UserError(
                    f"{where}, line {line}: {len(columns) + len(row[None])} cells, header has {len(columns)}"
                )
            if not any((value or "").strip() for value in row.values()):
                continue
            items.append(_item({k: v for k, v in row.items() if v is not None}, where, line))
    except csv.Error as error:
        raise UserError(f"{where}, line {reader.line_num}: not valid CSV ({error})") from None
    return items


def load_questions(path: Path, name: str | None = None) -> QuestionSet:
    """The question set in `path` (.csv is read as CSV, anything else as JSONL); `name` is what messages call it."""
    where = name or path.name
    if not path.is_file():
        raise UserError(f"{path}: no such question file ({FORMAT_HINT})")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{where}: not UTF-8 text") from None
    items = _csv(text, where) if where.lower().endswith(".csv") else _jsonl(text, where)
    if not items:
        raise UserError(f"{where}: no questions")
    if len(items) > MAX_QUESTIONS:
        raise UserError(f"{where}: {len(items)} questions; the limit is {MAX_QUESTIONS}")
    return QuestionSet(where, items, hashlib.sha256(data).hexdigest())
