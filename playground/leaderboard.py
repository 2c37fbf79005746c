"""The blind arena's leaderboard: Bradley–Terry ratings fitted on pairwise votes with bootstrap 95 % intervals, win
rates and vote counts, per arm and per arm and adapter; and how often the answer shown first (A) wins.

How each vote counts:
- "A is better" / "B is better": a win for that answer's arm, a loss for the other.
- a tie: half a win and half a loss for each (the usual treatment of a draw in Bradley–Terry and Elo).
- "both are bad": says nothing about which answer is better, so it is left out of the ratings and win rates; it is
  counted, per arm and overall, as a vote where neither answer was acceptable.

Only pairs are rated, never single answers: each vote compares two arms on the same question, so a question's
difficulty cancels out. Ratings built from answers scored one at a time mix easy and hard questions and make Elo
misleading, as reviews of LLM arenas point out.

Ratings are on the Elo scale (a 400-point lead means 10 : 1 odds of being preferred), centred on 1000 over the
board's arms. The intervals resample whole votes (seeded: the same log gives the same intervals).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import binomtest, bootstrap

from playground.metrics import arm_label
from playground.votes import Outcome, Vote

ELO_SCALE = 400 / math.log(10)  # log-odds → Elo points
CENTRE = 1000.0
# A weak Gaussian prior on the log-strengths (variance 1 / PRIOR): it keeps the rating of an arm that never lost
# finite, where the plain maximum-likelihood estimate runs off to infinity, and moves ratings backed by tens of votes
# by well under 1 %.
PRIOR = 0.01
RESAMPLES = 1000
FEW_VOTES = 5  # rated votes of an arm under which its interval says little more than that votes are few
BATCH = 100  # resamples fitted together: bounds the memory a long log's resampled votes take


def fit_bradley_terry(wins: np.ndarray, prior: float = PRIOR) -> np.ndarray:
    """Log-strengths θ (mean 0) maximising Σ wins[i, j] · log σ(θi − θj) − prior / 2 · |θ|², where wins[i, j] counts
    how often i was preferred to j (a tie adds ½ to both). Under the model, P(i preferred to j) = σ(θi − θj).

    `wins` may have leading axes (one problem per bootstrap resample): the problems are independent, so their sum is
    minimised in one optimiser run, far faster than one run each."""
    shape = wins.shape[:-1]
    met = wins + np.swapaxes(wins, -1, -2)  # how often each two met, in either order

    def gaps(flat: np.ndarray) -> np.ndarray:
        theta = flat.reshape(shape)
        return theta[..., :, None] - theta[..., None, :]

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        gap = gaps(flat)
        loss = np.sum(wins * np.logaddexp(0.0, -gap)) + prior / 2 * float(flat @ flat)
        pull = wins * expit(-gap)  # how much each pairing's wins still push i up and j down
        return float(loss), (pull.sum(axis=-2) - pull.sum(axis=-1)).ravel() + prior * flat

    def curvature(flat: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """The Hessian times `direction`: a graph Laplacian weighted by met · p (1 − p), plus the prior."""
        chance = expit(gaps(flat))
        weight = met * chance * (1.0 - chance)
        step = direction.reshape(shape)
        laplacian = weight.sum(axis=-1) * step - np.einsum("...ij,...j->...i", weight, step)
        return laplacian.ravel() + prior * direction

    # Newton steps with exact curvature converge in a dozen iterations where L-BFGS needs many more and stops short.
    found = minimize(
        objective, np.zeros(math.prod(shape)), jac=True, hessp=curvature, method="Newton-CG", options={"xtol": 1e-10}
    )
    theta = found.x.reshape(shape)
    return theta - theta.mean(axis=-1, keepdims=True)  # only differences are identified: centre them


def elo(theta: np.ndarray) -> np.ndarray:
    return CENTRE + ELO_SCALE * (theta - theta.mean(axis=-1, keepdims=True))


@dataclass(frozen=True)
class Standing:
    """One arm's (or arm and adapter's) line on a board."""

    player: str  # what the board shows: "RAG", "Fine-tuned (adapter train)"
    arm: str
    adapter: str | None
    wins: int
    losses: int
    ties: int
    both_bad: int
    rating: float | None = None  # Elo scale; None without a rated vote
    low: float | None = None  # 95 % bootstrap interval; None with fewer than two rated votes
    high: float | None = None

    @property
    def rated(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def votes(self) -> int:
        return self.rated + self.both_bad

    @property
    def win_rate(self) -> float | None:
        """Share of rated votes won, a tie counting half."""
        return (self.wins + self.ties / 2) / self.rated if self.rated else None

    def to_json(self) -> dict[str, Any]:
        return {
            "player": self.player,
            "arm": self.arm,
            "adapter": self.adapter,
            "rating": self.rating,
            "low": self.low,
            "high": self.high,
            "win_rate": self.win_rate,
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "both_bad": self.both_bad,
            "votes": self.votes,
        }


@dataclass(frozen=True)
class PositionBias:
    """How often the answer shown first (A) won the votes that chose one: 50 % when position does not matter."""

    a_wins: int
    b_wins: int
    ties: int
    both_bad: int
    a_rate: float | None  # A's wins / decisive votes; None without a decisive vote
    low: float | None  # Wilson 95 % interval
    high: float | None

    @property
    def sentence(self) -> str:
        decisive = self.a_wins + self.b_wins
        if not decisive or self.a_rate is None or self.low is None or self.high is None:
            return "No vote has chosen A or B yet: position bias cannot be checked."
        figures = (
            f"A (shown first) won {self.a_wins} of {decisive} votes that chose an answer "
            f"({self.a_rate:.0%} [{self.low:.0%}, {self.high:.0%}])"
        )
        if self.low <= 0.5 <= self.high:
            return f"{figures}: within chance, no sign of position bias."
        side = "first (A)" if self.a_rate > 0.5 else "second (B)"
        return f"{figures}: the answer shown {side} is preferred more often than chance (position bias)."

    def to_json(self) -> dict[str, Any]:
        return {
            "a_wins": self.a_wins,
            "b_wins": self.b_wins,
            "ties": self.ties,
            "both_bad": self.both_bad,
            "a_win_rate": self.a_rate,
            "low": self.low,
            "high": self.high,
            "sentence": self.sentence,
        }


def position_bias(votes: Sequence[Vote]) -> PositionBias:
    counts = {outcome: sum(v.vote is outcome for v in votes) for outcome in Outcome}
    a_wins, b_wins = counts[Outcome.A], counts[Outcome.B]
    rate = low = high = None
    if a_wins + b_wins:
        test = binomtest(a_wins, a_wins + b_wins)
        interval = test.proportion_ci(confidence_level=0.95, method="wilson")
        rate, low, high = a_wins / (a_wins + b_wins), float(interval.low), float(interval.high)
    return PositionBias(a_wins, b_wins, counts[Outcome.TIE], counts[Outcome.BOTH_BAD], rate, low, high)


Player = tuple[str, str | None]  # (arm, adapter); the adapter is None on the per-arm board


def _by_arm(vote: Vote) -> tuple[Player, Player]:
    return (vote.arm_a, None), (vote.arm_b, None)


def _by_adapter(vote: Vote) -> tuple[Player, Player]:
    return (vote.arm_a, vote.adapter_a), (vote.arm_b, vote.adapter_b)


SCORE_OF_A = {Outcome.A: 1.0, Outcome.TIE: 0.5, Outcome.B: 0.0}  # "both are bad" is not rated


def standings(
    votes: Sequence[Vote],
    players_of: Callable[[Vote], tuple[Player, Player]] = _by_arm,
    prior: float = PRIOR,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[Standing]:
    """One board: every player that took part in a vote, best rating first (unrated ones last)."""
    pairs = [players_of(vote) for vote in votes]
    tally: dict[Player, dict[str, int]] = {}
    for vote, pair in zip(votes, pairs, strict=True):
        for side, player in zip((Outcome.A, Outcome.B), pair, strict=True):
            counts = tally.setdefault(player, {"wins": 0, "losses": 0, "ties": 0, "both_bad": 0})
            if vote.vote in (Outcome.TIE, Outcome.BOTH_BAD):
                counts["ties" if vote.vote is Outcome.TIE else "both_bad"] += 1
            else:
                counts["wins" if vote.vote is side else "losses"] += 1
    rated = [(a, b, SCORE_OF_A[v.vote]) for v, (a, b) in zip(votes, pairs, strict=True) if v.vote in SCORE_OF_A]
    ratings, intervals = _ratings(rated, prior, resamples, seed)
    found = [
        Standing(arm_label(*player), *player, **counts, rating=ratings.get(player), **intervals.get(player, {}))
        for player, counts in tally.items()
    ]
    return sorted(found, key=lambda s: (s.rating is None, -(s.rating or 0.0), s.player))


def _ratings(
    rated: list[tuple[Player, Player, float]], prior: float, resamples: int, seed: int
) -> tuple[dict[Player, float], dict[Player, dict[str, float]]]:
    """Elo-scale ratings of the players in the rated votes (A, B, A's score), and their percentile bootstrap
    intervals over resampled votes."""
    if not rated:
        return {}, {}
    players = sorted({p for a, b, _ in rated for p in (a, b)}, key=lambda p: (p[0], p[1] or ""))
    column = {player: i for i, player in enumerate(players)}
    first = np.array([column[a] for a, _, _ in rated])
    second = np.array([column[b] for _, b, _ in rated])
    score = np.array([s for _, _, s in rated])

    def ratings_of(chosen: np.ndarray, axis: int = -1) -> np.ndarray:
        """Elo ratings from the votes `chosen` (indices; leading axes: resamples), resamples on the last axis. `axis`
        is scipy's: the votes are always on the last one."""
        votes = chosen.reshape(-1, chosen.shape[-1])
        batch = np.arange(len(votes))[:, None]
        wins = np.zeros((len(votes), len(players), len(players)))
        np.add.at(wins, (batch, first[votes], second[votes]), score[votes])
        np.add.at(wins, (batch, second[votes], first[votes]), 1.0 - score[votes])
        found = elo(fit_bradley_terry(wins, prior)).reshape((*chosen.shape[:-1], len(players)))
        return np.moveaxis(found, -1, 0)  # scipy's bootstrap wants the resamples last

    ratings = dict(zip(players, ratings_of(np.arange(len(rated))).tolist(), strict=True))
    if len(rated) < 2:  # one vote: nothing to resample
        return ratings, {}
    drawn = bootstrap(
        (np.arange(len(rated)),),
        ratings_of,
        vectorized=True,
        batch=BATCH,
        n_resamples=resamples,
        method="percentile",  # BCa would refit once per vote for its jackknife; percentile needs only the resamples
        rng=np.random.default_rng(seed),
    )
    low, high = drawn.confidence_interval
    return ratings, {p: {"low": float(low[i]), "high": float(high[i])} for i, p in enumerate(players)}


@dataclass(frozen=True)
class Leaderboard:
    votes: int  # every stored vote, "both are bad" included
    by_arm: list[Standing]
    by_adapter: list[Standing]
    position: PositionBias
    problems: list[str]  # damaged lines of the log, skipped
    resamples: int = RESAMPLES
    seed: int = 0

    @property
    def caution(self) -> str:
        """A warning when an arm is rated on few votes: a percentile bootstrap over a handful of votes often puts
        the rating on an edge of its interval, or spans most of the scale."""
        few = [s.player for s in self.by_arm if s.rating is not None and s.rated < FEW_VOTES]
        if not few:
            return ""
        return (
            f"Few votes: {', '.join(few)} rated on fewer than {FEW_VOTES} votes each; their ratings and intervals "
            "will move a lot with the next votes."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "votes": self.votes,
            "rated_votes": self.votes - self.position.both_bad,
            "caution": self.caution,
            "scale": "Elo: 400 points = 10:1 odds of being preferred; mean of each board's arms = 1000",
            "interval": f"95 % percentile bootstrap over votes ({self.resamples} resamples, seed {self.seed})",
            "ties": "half a win and half a loss for each arm",
            "both_bad": "left out of ratings and win rates; counted",
            "by_arm": [s.to_json() for s in self.by_arm],
            "by_adapter": [s.to_json() for s in self.by_adapter],
            "position": self.position.to_json(),
            "problems": self.problems,
        }


def leaderboard(
    votes: Sequence[Vote],
    problems: Sequence[str] = (),
    prior: float = PRIOR,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Leaderboard:
    """Both boards (per arm, adapters pooled; per arm and adapter) and the position-bias check."""
    return Leaderboard(
        votes=len(votes),
        by_arm=standings(votes, _by_arm, prior, resamples, seed),
        by_adapter=standings(votes, _by_adapter, prior, resamples, seed),
        position=position_bias(votes),
        problems=list(problems),
        resamples=resamples,
        seed=seed,
    )
