"""From RAG usage to a fine-tune: with the user's consent, each question with RAG's answer and the chunks it read is
logged for that browser alone; a filter then keeps the answers worth training on, as a chat dataset. This is
distillation of RAG into an adapter (the freshness drill shows what that costs once a fact changes).

Each browser session (its private workspace id) has its own append-only JSON Lines file,
`PLAYGROUND_HOME/usage/<sha256 of the workspace id>.jsonl`: one `answer` line per logged comparison, and one `mark`
line each time the user marks that answer good (or takes the mark back; the last mark counts). A line already
written is never rewritten; "Forget my log" removes the whole file. A session reads only its own file, so it never
sees another's questions; the file is named by a hash because the id itself is the key to the browser's uploads.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters import jsonl
from adapters.errors import UserError
from playground.config import Settings
from playground.highlight import used_spans
from playground.workspaces import is_workspace_id

FOLDER = "usage"
# An answer "contains text from its chunks" when it repeats at least this many words of one chunk in one stretch
# (highlight.used_spans with runs of this length): the Compare tab highlights runs of 4 words, but a training
# target needs more than stock phrasing ("you can return it") in common with what RAG read.
MIN_SPAN_WORDS = 5
MAX_LOG_BYTES = 20_000_000  # ~ 5,000 answers with their chunks: one browser cannot fill a shared server's disk

MARKED_GOOD = "marked good"
NO_CHUNKS = "no chunks were retrieved, and it was not marked good"
NOT_FROM_CHUNKS = f"not marked good, and repeats no {MIN_SPAN_WORDS}-word stretch of its chunks"
REPEATED = "the same question and answer as one kept already"


@dataclass(frozen=True)
class LoggedChunk:
    source: str
    content: str


@dataclass(frozen=True)
class LoggedAnswer:
    """One question with RAG's answer and the chunks it read; `good`: the user's last mark."""

    id: str
    question: str
    answer: str
    chunks: tuple[LoggedChunk, ...]
    time: str = ""
    good: bool = False


@dataclass(frozen=True)
class StoredUsage:
    answers: list[LoggedAnswer]  # oldest first
    problems: list[str]  # one line per damaged line, which is skipped


def consent_default(settings: Settings) -> bool:
    """Off on a shared demo: strangers' questions are stored only when each ticks the box. On when not shared:
    the one user is the server's owner, the log stays on their own disk, and the box says it is on."""
    return not settings.shared


def source_description(kept: int, total: int) -> str:
    """What a job's card and the adapter's registry record say about data made from the log."""
    return f"from RAG usage log, {kept} of {total} answers kept"


class UsageLog:
    """Every session's log under `home/usage/`. Appends are serialised, one write per line."""

    def __init__(self, home: Path) -> None:
        self.folder = home / FOLDER
        self._lock = threading.Lock()

    def path(self, workspace: str | None) -> Path:
        if not is_workspace_id(workspace):
            raise UserError("This page has no session yet: reload it, then try again.")
        return self.folder / f"{hashlib.sha256(str(workspace).encode()).hexdigest()[:32]}.jsonl"

    def record(self, workspace: str | None, comparison: dict[str, Any]) -> LoggedAnswer | None:
        """Logs a finished comparison's question, RAG answer and chunks (its JSON document, as `Comparison.to_json`
        gives it); None when RAG gave no answer to log."""
        rag = (comparison.get("answers") or {}).get("rag") or {}
        answer, question = str(rag.get("text") or "").strip(), str(comparison.get("question") or "").strip()
        if rag.get("error") or not answer or not question:
            return None
        chunks = tuple(
            LoggedChunk(str(c.get("source") or ""), str(c.get("content") or "")) for c in comparison.get("chunks") or []
        )
        entry = LoggedAnswer(secrets.token_hex(8), question, answer, chunks, _now())
        path = self.path(workspace)
        if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
            raise UserError("Your log is full (20 MB): train on it, or press “Forget my log”, then ask again.")
        self._append(
            path,
            {
                "type": "answer",
                "id": entry.id,
                "time": entry.time,
                "question": question,
                "answer": answer,
                "chunks": [{"source": c.source, "content": c.content} for c in chunks],
                "base_model": (comparison.get("model") or {}).get("base"),
                "retrieval": comparison.get("retrieval") or {},
            },
        )
        return entry

    def mark(self, workspace: str | None, answer_id: str | None, good: bool) -> None:
        """Marks one of this session's logged answers good (or not); another session's id is not found."""
        if not answer_id or answer_id not in {a.id for a in self.read(workspace).answers}:
            raise UserError("That answer is not in this browser's log: ask a question with the log on first.")
        self._append(self.path(workspace), {"type": "mark", "id": answer_id, "good": bool(good), "time": _now()})

    def read(self, workspace: str | None) -> StoredUsage:
        answers: dict[str, LoggedAnswer] = {}
        problems = []
        for number, record, problem in jsonl.logged(self.path(workspace)):
            try:
                if problem:
                    raise ValueError(problem)
                if record.get("type") == "answer":
                    answers[record["id"]] = _answer(record)
                elif record.get("type") == "mark" and record.get("id") in answers:
                    answers[record["id"]] = _with_mark(answers[record["id"]], bool(record.get("good")))
            except (ValueError, KeyError, TypeError, AttributeError):  # a crash mid-write, an edit by hand
                what = "not valid JSON" if problem else "not a logged answer or mark"
                problems.append(f"your usage log, line {number}: {what}, skipped")
        return StoredUsage(list(answers.values()), problems)

    def clear(self, workspace: str | None) -> int:
        """Deletes this session's log; returns how many answers it held."""
        held = len(self.read(workspace).answers)
        with self._lock:
            self.path(workspace).unlink(missing_ok=True)
        return held

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        jsonl.append(path, record, self._lock)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _answer(record: dict[str, Any]) -> LoggedAnswer:
    chunks = tuple(LoggedChunk(str(c["source"]), str(c["content"])) for c in record.get("chunks") or [])
    return LoggedAnswer(
        str(record["id"]), str(record["question"]), str(record["answer"]), chunks, str(record.get("time") or "")
    )


def _with_mark(answer: LoggedAnswer, good: bool) -> LoggedAnswer:
    return LoggedAnswer(answer.id, answer.question, answer.answer, answer.chunks, answer.time, good)


# ---- the filter and the dataset --------------------------------------------------------------------------------


def copied_stretch(answer: str, chunks: Sequence[LoggedChunk]) -> tuple[int, int]:
    """(words, chunk index) of the longest stretch of one chunk that the answer repeats; (0, -1) when none reaches
    MIN_SPAN_WORDS words."""
    best = (0, -1)
    for index, chunk in enumerate(chunks):
        for start, end in used_spans(chunk.content, [answer], min_run=MIN_SPAN_WORDS):
            words = len(chunk.content[start:end].split())
            if words >= MIN_SPAN_WORDS and words > best[0]:
                best = (words, index)
    return best


@dataclass(frozen=True)
class KeptAnswer:
    answer: LoggedAnswer
    why: str  # "marked good", or which chunk's words it repeats

    def row(self) -> list[str]:
        """The Fine-tune tab's review row: question, answer, source files, how it was chosen.

        The chunks stay out of the training prompt on purpose: the adapter is asked without retrieval (the
        fine-tuned arm's prompt is the question alone), so it must learn to answer from the question; with the
        chunks in the prompt it would learn to read them, which is what RAG already does."""
        sources = ", ".join(dict.fromkeys(c.source for c in self.answer.chunks if c.source))
        return [self.answer.question, self.answer.answer, sources, f"RAG answer: {self.why}"]


@dataclass(frozen=True)
class UsageSelection:
    kept: list[KeptAnswer]
    dropped: Counter[str] = field(default_factory=Counter)  # why, and how many
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.kept) + sum(self.dropped.values())

    def rows(self) -> list[list[str]]:
        return [kept.row() for kept in self.kept]

    @property
    def source(self) -> str:
        return source_description(len(self.kept), self.total)

    def why_dropped(self) -> str:
        return "; ".join(f"{count} {why}" for why, count in self.dropped.most_common())

    def note(self) -> str:
        good = sum(k.why == MARKED_GOOD for k in self.kept)
        note = (
            f"Kept {len(self.kept)} of your {self.total} logged RAG answers: {good} marked good, "
            f"{len(self.kept) - good} repeating {MIN_SPAN_WORDS}+ words of their chunks."
        )
        if self.dropped:
            note += f" Not kept: {self.why_dropped()}."
        if self.problems:
            note += f" {len(self.problems)} damaged line(s) of the log skipped ({self.problems[0]})."
        return note + (
            " Each row trains the question alone → RAG's answer (no chunks in the prompt). They are the dataset now; "
            "edit the table and press “Use these pairs as the dataset” to train on your edits."
        )


def select(stored: StoredUsage) -> UsageSelection:
    """The answers worth training on: marked good, or repeating a stretch of their chunks; each (question, answer)
    once, the first logged kept."""
    kept: list[KeptAnswer] = []
    dropped: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for answer in stored.answers:
        words, index = copied_stretch(answer.answer, answer.chunks)
        if answer.good:
            why = MARKED_GOOD
        elif index >= 0:
            chunk = answer.chunks[index]
            why = f"repeats {words} words of chunk {index + 1}" + (f" ({chunk.source})" if chunk.source else "")
        else:
            dropped[NOT_FROM_CHUNKS if answer.chunks else NO_CHUNKS] += 1
            continue
        key = (" ".join(answer.question.split()).casefold(), " ".join(answer.answer.split()).casefold())
        if key in seen:
            dropped[REPEATED] += 1
            continue
        seen.add(key)
        kept.append(KeptAnswer(answer, why))
    return UsageSelection(kept, dropped, list(stored.problems))
