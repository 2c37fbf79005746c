"""Which parts of a retrieved chunk an answer used: runs of words the answer repeats, and its numbers."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Words with inner dots, commas and apostrophes kept whole, so "6.5", "1,299" and "don't" are one word each.
_WORD = re.compile(r"\w+(?:[.,']\w+)*")
MIN_RUN = 4  # shorter shared runs are mostly phrasing ("the price of"), not content taken from the chunk


def _words(text: str) -> list[re.Match[str]]:
    return list(_WORD.finditer(text))


def used_spans(chunk: str, answers: Iterable[str], min_run: int = MIN_RUN) -> list[tuple[int, int]]:
    """Character spans of `chunk` that appear in any answer: runs of `min_run`+ words in the same order, and
    numbers (words of 2+ characters with a digit) the answer states. Spans are sorted and do not overlap."""
    runs: set[tuple[str, ...]] = set()
    numbers: set[str] = set()
    for answer in answers:
        said = [m.group().lower() for m in _words(answer)]
        runs.update(tuple(said[i : i + min_run]) for i in range(len(said) - min_run + 1))
        # Single digits ("2 people", "Summit 2") match too much by chance to count alone.
        numbers.update(w for w in said if len(w) > 1 and any(ch.isdigit() for ch in w))
    found = _words(chunk)
    words = [m.group().lower() for m in found]
    used = [w in numbers for w in words]
    for i in range(len(words) - min_run + 1):
        if tuple(words[i : i + min_run]) in runs:
            used[i : i + min_run] = [True] * min_run
    spans: list[tuple[int, int]] = []
    for match, is_used in zip(found, used, strict=True):
        if not is_used:
            continue
        if spans and _only_space_between(chunk, spans[-1][1], match.start()):
            spans[-1] = (spans[-1][0], match.end())
        else:
            spans.append((match.start(), match.end()))
    return spans


def _only_space_between(text: str, end: int, start: int) -> bool:
    """Joins neighbouring used words into one span across spaces and punctuation, not across sentences."""
    gap = text[end:start]
    return len(gap) <= 3 and not any(ch in ".!?\n" for ch in gap)
