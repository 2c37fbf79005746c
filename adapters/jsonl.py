"""JSON Lines read line by line, every problem a one-line message naming the file and the line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from adapters.errors import UserError


def objects(text: str, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every line that is not blank; a line that is not a JSON object is a `UserError`."""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            raise UserError(f"{name}, line {number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{name}, line {number}: expected a JSON object, got {type(record).__name__}")
        yield number, record
