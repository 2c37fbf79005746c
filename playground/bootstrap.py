"""How sure a mean over a question set is: bootstrap confidence intervals for one arm's mean and for the paired
difference between two arms answering the same questions.

The intervals are BCa (bias-corrected and accelerated, scipy's default) rather than percentile: the scores are
skewed (rates near 0 or 1, long-tailed latencies), where BCa corrects the percentile interval's bias and skew and
covers closer to its nominal level. Its one weakness, a nan interval when every value is equal, is handled here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import DegenerateDataWarning, bootstrap


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int  # the values the mean is over

    def text(self, signed: bool = False, digits: int = 2) -> str:
        """'0.62 [0.51, 0.73]', or with `signed` (for differences) '+0.12 [0.05, 0.19]'."""

        def number(value: float, sign: str = "") -> str:
            return f"{round(value, digits) + 0.0:{sign}.{digits}f}"  # + 0.0 turns a rounded -0.0 into 0.0

        return f"{number(self.mean, '+' if signed else '')} [{number(self.low)}, {number(self.high)}]"

    def __str__(self) -> str:
        return self.text()


def _mean(sample: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(sample, axis=axis)


def _bounds(sample: np.ndarray, method: str, confidence: float, resamples: int, seed: int) -> tuple[float, float]:
    with warnings.catch_warnings():
        # Degenerate resamples make BCa divide by zero and warn; the caller falls back instead of showing them.
        warnings.simplefilter("ignore", DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = bootstrap(
            (sample,),
            _mean,
            n_resamples=resamples,
            vectorized=True,
            confidence_level=confidence,
            method=method,
            rng=np.random.default_rng(seed),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _interval(sample: np.ndarray, confidence: float, resamples: int, seed: int) -> Interval | None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence}")
    if sample.size == 0:
        return None
    mean = float(sample.mean())
    if sample.size == 1 or bool(np.all(sample == sample[0])):  # every resample has this mean: nothing to bootstrap
        return Interval(mean, mean, mean, int(sample.size))
    low, high = _bounds(sample, "BCa", confidence, resamples, seed)
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa's jackknife or bias term degenerated
        low, high = _bounds(sample, "percentile", confidence, resamples, seed)
    return Interval(mean, low, high, int(sample.size))


def mean_interval(
    values: Sequence[float | None], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Interval | None:
    """Mean of the non-None values and its bootstrap interval (BCa); None when no values. Seeded: the same values
    give the same interval."""
    return _interval(np.array([v for v in values if v is not None], dtype=float), confidence, resamples, seed)


def paired_difference(
    a: Sequence[float | None],
    b: Sequence[float | None],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval | None:
    """mean(a - b) over the questions where both are scored, with a paired bootstrap interval; None when no
    question has both."""
    if len(a) != len(b):
        raise ValueError(f"paired scores must align: {len(a)} against {len(b)}")
    # Resampling the per-question differences draws each question's pair together: the paired bootstrap, which
    # removes the between-question spread both arms share and so gives a narrower, honest interval.
    differences = [x - y for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    return _interval(np.array(differences, dtype=float), confidence, resamples, seed)
