"""One error channel: a UserError's message reaches the page; anything else is logged and shown as internal."""

from __future__ import annotations

import logging

import gradio as gr
import pytest

from adapters.datasets import DatasetError
from adapters.errors import UserError
from playground.ui.errors import INTERNAL, shows_errors


def test_a_user_error_is_shown_as_is():
    @shows_errors
    def handler() -> None:
        raise UserError("Type a question first.")

    with pytest.raises(gr.Error, match="Type a question first"):
        handler()


def test_an_internal_error_is_logged_and_not_passed_off_as_the_users(caplog):
    @shows_errors
    def handler() -> None:
        raise ValueError("array of shape (3,) does not broadcast")  # a bug, not the user's mistake

    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error) as raised:
        handler()
    assert raised.value.message == INTERNAL
    assert "does not broadcast" in caplog.text and "Traceback" in caplog.text


def test_streaming_handlers_too():
    @shows_errors
    def handler():
        yield 1
        raise UserError("The adapter 'x' is not loaded.")

    stream = handler()
    assert next(stream) == 1
    with pytest.raises(gr.Error, match="not loaded"):
        next(stream)


def test_user_mistakes_of_every_layer_share_the_type(service):
    assert issubclass(DatasetError, UserError)
    with pytest.raises(UserError, match="Type a question"):
        service.compare("  ")
