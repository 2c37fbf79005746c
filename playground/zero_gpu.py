"""Hugging Face ZeroGPU Spaces: a GPU is lent only to calls wrapped by the `spaces` package's `GPU` decorator.

On such a Space (`SPACES_ZERO_GPU` is set and `spaces` imports) the page's comparison handler and the `compare` API
are wrapped; elsewhere `on_gpu` returns the function as it is, and a dedicated GPU Space uses its GPU directly.
`spaces` runs each wrapped call in a forked process and pickles its arguments and results, so only handlers whose
arguments and outputs are plain values are wrapped, and the engine starts its worker thread again in the child
(`adapters.engine`). A forked child also computes on the CPU with one torch thread: the parent's OpenMP threads do
not survive the fork, and the child's first parallel CPU operation (the query's embedding) waited for them forever.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU hardware
# The GPU a comparison asks for: spaces' default; four arms of up to 1024 new tokens on a small model take seconds.
ZERO_GPU_COMPARE_S = 60

logger = logging.getLogger(__name__)


def zero_gpu() -> bool:
    """Whether this process runs on a ZeroGPU Space with the `spaces` package installed."""
    if not os.environ.get(ZERO_GPU_ENV):
        return False
    try:
        import spaces  # noqa: F401 (there it must be imported anyway, and before CUDA is first touched)
    except ImportError:
        logger.warning("%s is set but the spaces package is not installed: the GPU is not asked for", ZERO_GPU_ENV)
        return False
    return True


def on_gpu(fn: F, seconds: int) -> F:
    """`fn` as ZeroGPU lends it a GPU for at most `seconds` per call (on other hardware, `fn` itself)."""
    if not zero_gpu():
        return fn
    import spaces

    _one_thread_in_forked_children()
    return spaces.GPU(duration=seconds)(fn)


@functools.cache  # registered once per process: every wrapped handler forks alike
def _one_thread_in_forked_children() -> None:
    import torch

    os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
    logger.info("ZeroGPU: comparisons run in forked processes with the GPU; their CPU work on one thread")
