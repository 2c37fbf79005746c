"""A streamer for batched `generate` that splits the batch into one text stream per row."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer


@dataclass
class RowProgress:
    """Decoding state of one batch row."""

    token_ids: list[int] = field(default_factory=list)
    emitted: str = ""
    first_token_at: float | None = None
    finished_at: float | None = None
    finish_reason: str = "length"


@dataclass(frozen=True)
class TokenEvent:
    row: int
    text: str


@dataclass(frozen=True)
class RowFinished:
    row: int


class BatchRowStreamer(BaseStreamer):
    """Receives one token per row at each decoding step and queues per-row text deltas.

    `generate` calls `put` first with the prompt ids (skipped), then once per step with a
    `(batch,)` tensor. A row ends at its first end-of-sequence token; later padding is ignored.
    Timestamps are taken here, on the generating thread, right after each step.
    """

    def __init__(self, tokenizer: Any, batch_size: int, eos_token_ids: set[int], events: queue.Queue) -> None:
        self.tokenizer = tokenizer
        self.eos_token_ids = eos_token_ids
        self.events = events
        self.rows = [RowProgress() for _ in range(batch_size)]
        self._prompt_seen = False

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
                row.finished_at = now
                row.finish_reason = "stop"
                self.events.put(RowFinished(row_index))
                continue
            row.token_ids.append(token_id)
            text = self.tokenizer.decode(row.token_ids, skip_special_tokens=True)
            # Hold back an incomplete multi-byte character until its next token arrives.
            if text.endswith("\ufffd"):
                continue
            delta = text[len(row.emitted) :] if text.startswith(row.emitted) else text
            row.emitted = text
            if delta:
                self.events.put(TokenEvent(row_index, delta))

    def end(self) -> None:
        now = time.perf_counter()
        for row_index, row in enumerate(self.rows):
            if row.finished_at is None:
                row.finished_at = now
                if row.first_token_at is None:
                    row.first_token_at = now
                self.events.put(RowFinished(row_index))
