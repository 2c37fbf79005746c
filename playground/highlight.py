"""Which parts of a retrieved chunk an answer used: runs of words it repeats, and its numbers with their units."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# A word keeps inner dots, commas, apostrophes and hyphens, a leading currency sign and a trailing percent, so
# "6.5", "1,299", "don't", "4-year", "$349" and "20%" are one word each: "4-year" is never "5-year" or "year".
# Chinese and Japanese, written without spaces, are a word per character (else a sentence would be one word).
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_LETTERS = rf"[^\W{_UNSPACED}]+"
_WORD = re.compile(rf"[{_UNSPACED}]|[$€£]?{_LETTERS}(?:[.,'’-]{_LETTERS})*%?")
MIN_RUN = 4  # shorter shared runs are mostly phrasing ("the price of"), not content taken from the chunk
# Words after a number that are not what it counts ("$349 and", "12 of"): the number stands alone then.
_NOT_UNITS = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "is", "of", "on", "or", "the", "to", "with"})

NumberKey = tuple[str, str | None]  # the number as written, and the unit word after it (None: none)


def _words(text: str) -> list[re.Match[str]]:
    return list(_WORD.finditer(text))


def _numbers(text: str, found: Sequence[re.Match[str]]) -> list[tuple[int, NumberKey]]:
    """(index, key) of every number, with its unit when the next word is one ("4 lb", "12 people"). A single
    digit with no unit is left out: "Summit 2" or "2 of them" match another sentence's "2" too often by chance."""
    numbers = []
    for i, match in enumerate(found):
        word = match.group().lower()
        if any(ch.isdigit() for ch in word):
            unit = _unit(text, found, i)
            if len(word) > 1 or unit is not None:
                numbers.append((i, (word, unit)))
    return numbers


def _unit(text: str, found: Sequence[re.Match[str]], i: int) -> str | None:
    if i + 1 >= len(found) or text[found[i].end() : found[i + 1].start()].strip():  # punctuation ends the number
        return None
    word = found[i + 1].group().lower()
    return None if word in _NOT_UNITS or any(ch.isdigit() for ch in word) else word


def used_spans(chunk: str, answers: Iterable[str], min_run: int = MIN_RUN) -> list[tuple[int, int]]:
    """Character spans of `chunk` an answer repeats verbatim: runs of `min_run`+ words in the same order, and
    numbers together with their unit. Spans are sorted and do not overlap."""
    runs: set[tuple[str, ...]] = set()
    said_numbers: dict[str, set[str | None]] = {}
    for answer in answers:
        found = _words(answer)
        said = [m.group().lower() for m in found]
        runs.update(tuple(said[i : i + min_run]) for i in range(len(said) - min_run + 1))
        for _, (number, unit) in _numbers(answer, found):
            said_numbers.setdefault(number, set()).add(unit)
    found = _words(chunk)
    words = [m.group().lower() for m in found]
    used = [False] * len(words)
    for i, key in _numbers(chunk, found):
        width = _said_width(key, said_numbers)
        used[i : i + width] = [True] * width
    for i in range(len(words) - min_run + 1):
        if tuple(words[i : i + min_run]) in runs:
            used[i : i + min_run] = [True] * min_run
    return _join(chunk, found, used)


def _said_width(key: NumberKey, said: dict[str, set[str | None]]) -> int:
    """How many words of a chunk's number an answer repeats: 2 with the same unit, 1 for the number alone when
    one side gives no unit ("it costs 12." against "12 lb"), 0 when the units differ ("4 lb" against "4 oz")."""
    number, unit = key
    units = said.get(number, set()) | said.get(number.lstrip("$€£"), set())  # "349" said, "$349" written
    if unit is not None and unit in units:
        return 2
    return 1 if units and (unit is None or None in units) else 0


def _join(text: str, found: Sequence[re.Match[str]], used: Sequence[bool]) -> list[tuple[int, int]]:
    """Neighbouring used words become one span across spaces and punctuation, never across an unused word
    (it would be marked as repeated) nor across a sentence end."""
    spans: list[tuple[int, int]] = []
    for i, (match, is_used) in enumerate(zip(found, used, strict=True)):
        if not is_used:
            continue
        if spans and used[i - 1] and _only_space_between(text, spans[-1][1], match.start()):
            spans[-1] = (spans[-1][0], match.end())
        else:
            spans.append((match.start(), match.end()))
    return spans


def _only_space_between(text: str, end: int, start: int) -> bool:
    gap = text[end:start]
    return len(gap) <= 3 and not any(ch in ".!?\n" for ch in gap)
