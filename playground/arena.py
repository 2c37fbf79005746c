"""The blind arena's service: two arms drawn at random answer one question as A and B, unnamed; a vote is stored with
the question, both arms and adapters, both answers, the settings and the position, and only then are the names
revealed. The leaderboard is fitted on the stored votes (see `playground.leaderboard`)."""

from __future__ import annotations

import random
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from playground.compare import ARMS, ROW_NAMES, CompareOptions, CompareService, Comparison
from playground.export import vote_log_files
from playground.leaderboard import Leaderboard, leaderboard
from playground.metrics import NAMES
from playground.votes import Outcome, Vote, VoteLog, now

HELD_MATCHES = 256  # finished matches an API caller may still vote on; the oldest is dropped first


@dataclass(frozen=True)
class Match:
    """One question's pair of anonymous answers so far; A is shown first (left)."""

    question: str
    arm_a: str
    arm_b: str
    adapter_a: str | None = None
    adapter_b: str | None = None
    answer_a: str = ""
    answer_b: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # why an arm could not answer: such a pair cannot be voted on
    done: bool = False

    @property
    def votable(self) -> bool:
        return self.done and not self.error


def _settings(state: Comparison) -> dict[str, Any]:
    """What produced the answers, as stored with the vote."""
    return {
        "base_model": state.model.base,
        "model_source": state.model.source,
        "decoding": dict(state.decoding),
        "retrieval": {key: value for key, value in state.retrieval.items() if key != "stages"},
        "timing": state.timing,
    }


class ArenaService:
    def __init__(self, compare: CompareService, rng: random.Random | None = None) -> None:
        """`rng` draws the pair and its order (seed one for a reproducible draw)."""
        self.compare = compare
        self.log = VoteLog(compare.runtime.settings.home)
        # On a shared demo the log holds every visitor's questions and answers (which may quote their private
        # uploads): the page offers it only where one person uses the server.
        self.log_downloadable = not compare.runtime.settings.shared
        self._rng = rng or random.Random()
        # Matches played through the API wait here for their vote, by an unguessable id (the page keeps its own in
        # the browser's session state): an explicit, bounded cache.
        self._held: OrderedDict[str, Match] = OrderedDict()
        self._lock = threading.Lock()

    def draw(self, arms: Sequence[str], adapter: str | None) -> tuple[str, str]:
        """Two different arms among `arms` that can answer, in random order: (A, B)."""
        unknown = [arm for arm in arms if arm not in ARMS]
        if unknown:
            raise UserError(f"arms must be among {', '.join(ARMS)}; got {', '.join(unknown)}")
        chosen = [arm for arm in ROW_NAMES if arm in arms]
        if len(chosen) < 2:
            raise UserError("Choose at least two arms for the arena: it compares answers in pairs.")
        able = [arm for arm in chosen if adapter or not ARMS[arm][0]]
        if len(able) < 2:
            raise UserError(
                f"Only {NAMES[able[0]] if able else 'no arm'} of the chosen arms can answer: no LoRA adapter has been "
                "trained yet (Fine-tune tab). Choose the base model and RAG, or train an adapter."
            )
        first, second = self._rng.sample(able, 2)
        return first, second

    def play(self, question: str, options: CompareOptions, arms: Sequence[str] = ROW_NAMES) -> Iterator[Match]:
        """The match after retrieval, after every piece of either answer, and once both are done. Closing this
        stream stops the generation."""
        adapter = options.adapter or self.compare.runtime.model.adapter
        question = self.compare.check(question, options)  # a bad question is refused before any draw
        arm_a, arm_b = self.draw(arms, adapter)
        with closing(self.compare.stream(question, replace(options, arms=(arm_a, arm_b)))) as states:
            for state in states:
                yield Match(
                    question=question,
                    arm_a=arm_a,
                    arm_b=arm_b,
                    adapter_a=state.adapters.get(arm_a),
                    adapter_b=state.adapters.get(arm_b),
                    answer_a=state.texts.get(arm_a, ""),
                    answer_b=state.texts.get(arm_b, ""),
                    settings=_settings(state),
                    error=" ".join(state.errors.get(arm, "") for arm in (arm_a, arm_b)).strip(),
                    done=state.done,
                )

    def vote(self, match: Match | None, outcome: Outcome | str) -> Vote:
        """Stores the vote on a finished match and returns it: it names the arms."""
        if match is None:
            raise UserError("Ask a question first: there is no pair of answers to vote on (or it was voted on).")
        if not match.done:
            raise UserError("Wait until both answers are complete, then vote.")
        if match.error:
            raise UserError(f"This pair cannot be voted on: {match.error} Ask again.")
        try:
            outcome = Outcome(outcome)
        except ValueError:
            raise UserError(f"A vote is one of {', '.join(Outcome)}; got {outcome!r}.") from None
        vote = Vote(
            question=match.question,
            arm_a=match.arm_a,
            arm_b=match.arm_b,
            vote=outcome,
            adapter_a=match.adapter_a,
            adapter_b=match.adapter_b,
            answer_a=match.answer_a,
            answer_b=match.answer_b,
            settings=match.settings,
            time=now(),
        )
        self.log.append(vote)
        return vote

    def hold(self, match: Match) -> str:
        """Keeps a finished match for a later vote (`vote_held`); returns its id."""
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._held[token] = match
            while len(self._held) > HELD_MATCHES:
                self._held.popitem(last=False)
        return token

    def vote_held(self, token: str, outcome: Outcome | str) -> Vote:
        """The vote on a held match; the match is then dropped, so it counts once."""
        if outcome not in set(Outcome):  # a mistyped vote leaves the match to vote on again
            raise UserError(f"A vote is one of {', '.join(Outcome)}; got {outcome!r}.")
        with self._lock:
            match = self._held.pop(token or "", None)
        if match is None:
            raise UserError(
                f"No match {token!r} waits for a vote: it was voted on already, or is not one `arena` returned "
                f"(the latest {HELD_MATCHES} wait)."
            )
        return self.vote(match, outcome)

    def leaderboard(self) -> Leaderboard:
        stored = self.log.read()
        return leaderboard(stored.votes, stored.problems)

    def downloads(self, root: Path) -> dict[str, Path]:
        """The vote log as stored (`jsonl`) and as CSV (`csv`), written under `root`; empty before any vote and on
        a shared demo."""
        return vote_log_files(self.log, root) if self.log_downloadable else {}
