"""Where log records go: the project's own lines (adapters, pipelines, playground) from INFO up, other libraries'
from WARNING up, all to stderr as plain one-line messages, so a terminal reads like the page."""

from __future__ import annotations

import logging
import sys

OUR_PACKAGES = ("adapters", "pipelines", "playground")


def configure_logging(level: int = logging.INFO) -> None:
    """Once per process, by the entry points (the CLI, the Space); library code only ever calls getLogger."""
    root = logging.getLogger()
    if any(getattr(handler, "playground", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.playground = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in OUR_PACKAGES:
        logging.getLogger(name).setLevel(level)
