"""JSON Lines read line by line, every problem a one-line message naming the file and the line; and append-only
logs of them, read back past damaged lines."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
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


def append(path: Path, record: dict[str, Any], lock: threading.Lock) -> None:
    """Adds `record` as one line at the end of the log at `path`; what the log held stays as it was. One write per
    line, under `lock` (the page's sessions append concurrently), synced to disk."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+b") as log:
            log.seek(0, os.SEEK_END)
            if log.tell() > 0:
                log.seek(-1, os.SEEK_END)
                if log.read(1) != b"\n":  # a crash cut the last line short: it stays alone, damaged
                    log.write(b"\n")
            log.write(line)
            log.flush()
            os.fsync(log.fileno())


def logged(path: Path) -> Iterator[tuple[int, Any, str]]:
    """(line number, value, problem) for each line of the log at `path` that is not blank: the parsed value and "",
    or None and why the line could not be read ("not UTF-8 text", "not valid JSON (…)"). Nothing when there is no
    log. Callers check the value's shape themselves."""
    try:
        log = path.open("rb")
    except FileNotFoundError:
        return
    with log:
        for number, raw in enumerate(log, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                yield number, None, "not UTF-8 text"
                continue
            if not text:
                continue
            try:
                yield number, json.loads(text), ""
            except json.JSONDecodeError as error:
                yield number, None, f"not valid JSON ({error.msg})"
