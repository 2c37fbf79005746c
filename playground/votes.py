"""The blind arena's vote log: `PLAYGROUND_HOME/votes/votes.jsonl`, one JSON object per vote, appended.

Each line records the question, which arm (and adapter) answered as A — shown first, on the left — and which as B,
both answers, the settings they were produced with, and the vote. Keeping the position lets position bias be
measured (see `playground.leaderboard`). The log is only ever appended to: a vote already stored is never
rewritten, and a damaged line is reported by its number and skipped, never fatal to the others.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from adapters import jsonl
from playground.metrics import NAMES as ARMS  # the arms' names; light to import, unlike playground.compare

logger = logging.getLogger(__name__)

FOLDER = "votes"
LOG_NAME = "votes.jsonl"


class Outcome(StrEnum):
    """What a voter chose. How each counts in the ratings is said in `playground.leaderboard`."""

    A = "a"  # A's answer is better
    B = "b"  # B's answer is better
    TIE = "tie"  # both are as good
    BOTH_BAD = "both_bad"  # neither is acceptable

    @property
    def label(self) -> str:
        return {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}[self.value]


@dataclass(frozen=True)
class Vote:
    """One vote on one pair of anonymous answers; `_a` is the answer shown first (left), `_b` the second."""

    question: str
    arm_a: str
    arm_b: str
    vote: Outcome
    adapter_a: str | None = None  # the LoRA adapter that answered as A (fine-tuned and hybrid arms only)
    adapter_b: str | None = None
    answer_a: str = ""
    answer_b: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # base model, decoding, retrieval, timing
    time: str = ""  # when it was cast, ISO 8601 UTC

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "vote": self.vote.value}


def _text(record: dict[str, Any], key: str, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ValueError(f"missing or empty field {key!r}")
    return value


def parse_vote(record: Any) -> Vote:
    """A vote from one decoded line; ValueError naming the field when it is not one."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    arms = (_text(record, "arm_a"), _text(record, "arm_b"))
    for key, arm in zip(("arm_a", "arm_b"), arms, strict=True):
        if arm not in ARMS:
            raise ValueError(f"{key} is {arm!r}; expected one of {', '.join(ARMS)}")
    if arms[0] == arms[1]:
        raise ValueError(f"arm_a and arm_b are both {arms[0]!r}; a vote compares two different arms")
    try:
        outcome = Outcome(record.get("vote"))
    except ValueError:
        raise ValueError(f"vote is {record.get('vote')!r}; expected one of {', '.join(Outcome)}") from None
    settings = record.get("settings") or {}
    if not isinstance(settings, dict):
        raise ValueError("settings must be a JSON object")
    return Vote(
        question=_text(record, "question"),
        arm_a=arms[0],
        arm_b=arms[1],
        vote=outcome,
        adapter_a=_text(record, "adapter_a", required=False) or None,
        adapter_b=_text(record, "adapter_b", required=False) or None,
        answer_a=_text(record, "answer_a", required=False),
        answer_b=_text(record, "answer_b", required=False),
        settings=settings,
        time=_text(record, "time", required=False),
    )


@dataclass(frozen=True)
class StoredVotes:
    votes: list[Vote]
    problems: list[str]  # one line per damaged line: "votes.jsonl, line 7: not valid JSON (…)"


class VoteLog:
    """The append-only log under `home/votes/`. Appends from the page's concurrent sessions are serialised."""

    def __init__(self, home: Path) -> None:
        self.path = home / FOLDER / LOG_NAME
        self._lock = threading.Lock()

    def append(self, vote: Vote) -> None:
        """Stores `vote` as one line at the end of the log; what the log held stays as it was."""
        jsonl.append(self.path, vote.to_json(), self._lock)

    def read(self) -> StoredVotes:
        """Every vote that parses; each line that does not is named in `problems` (and logged) and skipped."""
        votes, problems = [], []
        for number, record, problem in jsonl.logged(self.path):
            try:
                if problem:
                    raise ValueError(problem)
                votes.append(parse_vote(record))
            except ValueError as error:
                problems.append(f"{LOG_NAME}, line {number}: {error}")
        for problem in problems:
            logger.warning("skipping a damaged vote: %s", problem)
        return StoredVotes(votes, problems)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
