"""Evaluation over a question set: how often each pane's answer holds the reference fact."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from playground.compare import ROW_NAMES, CompareOptions, CompareService

REQUIRED_FIELDS = ("question", "answer", "fact", "source")


@dataclass(frozen=True)
class EvalItem:
    question: str
    answer: str
    fact: str
    source: str
    kind: str = ""


def load_questions(path: Path) -> list[EvalItem]:
    """The question set in `path` (JSONL); every problem is a ValueError naming the file, and the line if any."""
    if not path.is_file():
        raise UserError(f"{path}: no such question file (JSONL with {', '.join(REQUIRED_FIELDS)} per line)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path.name}: not UTF-8 text") from None
    items = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise UserError(f"{path.name}, line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path.name}, line {number}: expected a JSON object, got {type(record).__name__}")
        missing = [f for f in REQUIRED_FIELDS if not isinstance(record.get(f), str) or not record[f].strip()]
        if missing:
            raise UserError(f"{path.name}, line {number}: missing or empty field '{missing[0]}'")
        items.append(EvalItem(**{k: record[k] for k in (*REQUIRED_FIELDS, "kind") if k in record}))
    if not items:
        raise UserError(f"{path.name}: no questions")
    return items


def contains_fact(text: str, fact: str) -> bool:
    return fact.lower() in (text or "").lower()


def evaluate(
    service: CompareService,
    items: list[EvalItem],
    options: CompareOptions = CompareOptions(),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Fact hit rate per pane (overall and per question kind) and the retriever's source hit rate."""
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for index, item in enumerate(items, start=1):
        result = service.compare(item.question, options)
        answers = result.answers
        rows.append(
            {
                "question": item.question,
                "kind": item.kind,
                "fact": item.fact,
                "retrieved_source": item.source in {c["source"] for c in result.chunks},
                **{f"{name}_hit": contains_fact(answers[name]["text"], item.fact) for name in answers},
                **{f"{name}_answer": answers[name]["text"] for name in answers},
            }
        )
        if progress:
            progress(index, len(items))

    def rate(key: str, subset: list[dict[str, Any]]) -> float | None:
        values = [r[key] for r in subset if key in r]
        return round(sum(values) / len(values), 3) if values else None

    kinds = sorted({r["kind"] for r in rows if r["kind"]})
    return {
        "questions": len(rows),
        "fact_hit_rate": {name: rate(f"{name}_hit", rows) for name in ROW_NAMES},
        "by_kind": {
            kind: {name: rate(f"{name}_hit", [r for r in rows if r["kind"] == kind]) for name in ROW_NAMES}
            for kind in kinds
        },
        "retrieval_source_hit_rate": rate("retrieved_source", rows),
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
