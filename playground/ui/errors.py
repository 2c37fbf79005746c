"""One way every event handler of the page reports failures.

A `UserError` is the user's to fix: its message is shown as is. Anything else is a bug or an outage: it is
logged with its traceback and the page says only that an internal error happened, so an internal message is
never mistaken for the user's mistake.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

from adapters.errors import UserError

logger = logging.getLogger(__name__)

INTERNAL = "Internal error: the server's log has the details."


def _shown(error: Exception, fn: Callable) -> gr.Error:
    if isinstance(error, UserError):
        return gr.Error(str(error))
    logger.error("internal error in %s", fn.__qualname__, exc_info=error)
    return gr.Error(INTERNAL)


def shows_errors(fn: Callable) -> Callable:
    """Wraps an event handler (plain or generator) so that failures reach the page as described above."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as error:
                raise _shown(error, fn) from None

        return stream

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:
            raise _shown(error, fn) from None

    return call
