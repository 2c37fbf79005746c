"""Refusing comparisons clearly under load: a bounded wait for a comparison slot, a "try again in" estimate.

Every comparison event (the page's Ask and Enter, the `/compare` API) joins one Gradio concurrency group, so
`PLAYGROUND_CONCURRENCY` of them run at once and the others wait in Gradio's queue, which shows each waiting
page its position. Once `PLAYGROUND_QUEUE_SIZE` wait, a new one is refused when it asks to join, before it is
queued, with how many wait and when to come back.

Why a `Queue` subclass: Gradio's own `queue(max_size=...)` counts every event of the app (a page load's
events as well, which a burst of comparisons would then refuse), and its refusal is an HTTP 503 whose text both
the page and `gradio_client` replace with a fixed "busy, try again" line. An event validator (`validator=`)
runs in a worker thread while the join waits, so a burst of joins could all pass it before any is queued, and
`gr.api` takes none. Overriding `Queue.push` checks and queues in one step on the server's event loop, and
answers with Gradio's validation error (HTTP 422), the one refusal whose text the page (under the question)
and `gradio_client` (`ValidationError`) show as it is.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio import queueing, route_utils

from adapters.errors import UserError

if TYPE_CHECKING:
    from playground.config import Settings

logger = logging.getLogger(__name__)

COMPARE_GROUP = "compare"  # the concurrency id shared by every comparison event, page and API
DEFAULT_SECONDS = 10.0  # assumed length of a comparison until one has finished (about 4 arms x 96 tokens on CPU)


@dataclass(frozen=True)
class LoadLimits:
    queue_size: int  # comparisons that may wait for a slot; one more is refused
    concurrency: int  # comparisons that run at once

    @classmethod
    def of(cls, settings: Settings) -> LoadLimits:
        if settings.queue_size < 0:
            raise UserError(f"PLAYGROUND_QUEUE_SIZE must be 0 or more, got {settings.queue_size}")
        if settings.concurrency < 1:
            raise UserError(f"PLAYGROUND_CONCURRENCY must be 1 or more, got {settings.concurrency}")
        return cls(queue_size=settings.queue_size, concurrency=settings.concurrency)

    def full(self, held: int) -> bool:
        """Whether a comparison more is refused while `held` run or wait."""
        return held >= self.concurrency + self.queue_size


class RecentDurations:
    """Wall times of the last few comparisons, cancelled ones too: how long each held its slot is what counts."""

    def __init__(self, window: int = 20, default: float = DEFAULT_SECONDS) -> None:
        self._seconds: deque[float] = deque(maxlen=window)
        self._default = default
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds.append(max(seconds, 0.0))

    def __len__(self) -> int:
        with self._lock:
            return len(self._seconds)

    def mean(self) -> float:
        with self._lock:
            return sum(self._seconds) / len(self._seconds) if self._seconds else self._default


def retry_after(waiting: int, limits: LoadLimits, mean_seconds: float) -> int:
    """Seconds until the comparisons now waiting and running should be answered, so that a retry starts at once."""
    return max(1, math.ceil(mean_seconds * (waiting + limits.concurrency) / limits.concurrency))


def busy_message(waiting: int, seconds: int) -> str:
    noun = "request" if waiting == 1 else "requests"
    return f"The playground is busy ({waiting} {noun} waiting); try again in about {seconds} s"


class BusyQueue(queueing.Queue):
    """Gradio's queue, refusing a comparison at once when its slots are taken and `limits.queue_size` wait."""

    def __init__(self, *args: Any, limits: LoadLimits, durations: RecentDurations | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.durations = durations or RecentDurations()

    def held(self) -> int:
        """Comparisons running or waiting (a join that finds a free slot waits a moment too, until picked)."""
        group = self.event_queue_per_concurrency_id.get(COMPARE_GROUP)
        return len(group.queue) + group.current_concurrency if group is not None else 0

    def refusal(self, body: Any) -> str | None:
        """The busy message when this join is a comparison and the wait is full; None to let Gradio queue it."""
        if body.fn_index is None:
            return None  # Gradio answers that itself
        try:
            fn = route_utils.get_fn(self.blocks, None, body)
        except KeyError:
            return None
        held = self.held()
        if fn.concurrency_id != COMPARE_GROUP or not self.limits.full(held):
            return None
        waiting = held - self.limits.concurrency
        seconds = retry_after(waiting, self.limits, self.durations.mean())
        logger.info("refused a comparison: %d waiting, retry in about %d s", waiting, seconds)
        return busy_message(waiting, seconds)

    async def push(self, body: Any, request: Any, username: str | None) -> tuple[bool, Any, Any]:
        # Nothing between this check and Gradio's append lets another join run (these events have no validator,
        # and Gradio's one lock there is never held across an await), so a burst cannot overfill the wait.
        message = self.refusal(body)
        if message is not None:
            return False, [{**gr.validate(False, message), "parameter_name": "question"}], "validator_error"
        return await super().push(body, request, username)

    async def process_events(self, events: list[Any], batch: bool, begin_time: float, fn: Any) -> None:
        try:
            await super().process_events(events, batch, begin_time, fn)
        finally:
            # Measured here, not from Gradio's own average: for a streamed event that holds only the first chunk.
            if fn.concurrency_id == COMPARE_GROUP:
                self.durations.add(time.time() - begin_time)


def enable_queue(app: gr.Blocks, limits: LoadLimits, **options: Any) -> gr.Blocks:
    """`app.queue(**options)`, with Gradio's queue replaced by a `BusyQueue` of the same settings."""
    app.queue(**options)
    stock = app._queue
    app._queue = BusyQueue(
        live_updates=stock.live_updates,
        concurrency_count=stock.max_thread_count,
        update_intervals=stock.update_intervals,
        max_size=stock.max_size,
        blocks=app,
        default_concurrency_limit=stock.default_concurrency_limit,
        limits=limits,
    )
    return app
