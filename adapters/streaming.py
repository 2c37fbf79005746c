"""Turning generated token ids into text deltas: per arm, and per row of a batched `generate`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer


@dataclass(frozen=True)
class TokenEvent:
    row: int
    text: str


class TokenText:
    """An answer's text so far, handed out as deltas; holds back an incomplete multi-byte character."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.token_ids: list[int] = []
        self.emitted = ""

    def add(self, token_id: int) -> str:
        self.token_ids.append(token_id)
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # wait for the rest of the character
            return ""
        delta = text[len(self.emitted) :] if text.startswith(self.emitted) else text
        self.emitted = text
        return delta

    def final(self) -> str:
        return self.tokenizer.decode(self.token_ids, skip_special_tokens=True).strip()


@dataclass
class RowProgress:
    """Decoding state of one batch row."""

    text: TokenText
    first_token_at: float | None = None
    finished_at: float | None = None
    finish_reason: str = "length"

    @property
    def token_ids(self) -> list[int]:
        return self.text.token_ids


@dataclass
class BatchRowStreamer(BaseStreamer):
    """Receives one token per row at each decoding step of a batched `generate`.

    `generate` calls `put` first with the prompt ids (skipped), then once per step with a `(batch,)`
    tensor. A row ends at its first end-of-sequence token; later padding is ignored. Timestamps are
    taken here, on the generating thread, right after each step.
    """

    tokenizer: Any
    batch_size: int
    eos_token_ids: set[int]
    emit: Callable[[TokenEvent], None]
    finished: Callable[[int], None]
    started: float = 0.0
    rows: list[RowProgress] = field(init=False)
    _prompt_seen: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.rows = [RowProgress(TokenText(self.tokenizer)) for _ in range(self.batch_size)]

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        now = time.perf_counter()
        for row_index, token_id in enumerate(value.reshape(-1).tolist()):
            row = self.rows[row_index]
            if row.finished_at is not None:
                continue
            if row.first_token_at is None:
                row.first_token_at = now
            if token_id in self.eos_token_ids:
                row.finished_at, row.finish_reason = now, "stop"
                self.finished(row_index)
                continue
            if delta := row.text.add(token_id):
                self.emit(TokenEvent(row_index, delta))

    def end(self) -> None:
        now = time.perf_counter()
        for row_index, row in enumerate(self.rows):
            if row.finished_at is None:
                row.finished_at = now
                if row.first_token_at is None:
                    row.first_token_at = now
                self.finished(row_index)
