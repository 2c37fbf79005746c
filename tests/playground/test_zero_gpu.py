"""On a ZeroGPU Space: comparisons run as the `spaces` package runs a GPU call, in a forked process with their values
pickled back, and the engine answers there and in the app afterwards. The `spaces` package here is a stand-in that
does what ZeroGPU's does with a call (fork, pickle); a real ZeroGPU Space was not at hand."""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import pickle
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from playground.compare import CompareOptions, CompareService
from playground.zero_gpu import ZERO_GPU_COMPARE_S, on_gpu, zero_gpu

QUESTION = "How much does the Summit 2 tent cost?"


class FakeSpaces(types.ModuleType):
    """`spaces.GPU(duration=…)`: each call runs in a forked child; arguments, yields and results cross pickled."""

    def __init__(self) -> None:
        super().__init__("spaces")
        self.wrapped: list[tuple[str, int]] = []

    def GPU(self, duration: int = 60) -> Callable[[Callable], Callable]:
        def wrap(fn: Callable) -> Callable:
            self.wrapped.append((fn.__name__, duration))
            if inspect.isgeneratorfunction(fn):

                @functools.wraps(fn)
                def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                    yield from _forked(fn, args, kwargs)

                return stream

            @functools.wraps(fn)
            def call(*args: Any, **kwargs: Any) -> Any:
                (result,) = _forked(fn, args, kwargs)
                return result

            return call

        return wrap


def _forked(fn: Callable, args: tuple, kwargs: dict) -> Iterator[Any]:
    context = multiprocessing.get_context("fork")
    channel = context.Queue()
    args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))  # what crosses to the child

    def child() -> None:
        try:
            outcome = fn(*args, **kwargs)
            for item in outcome if inspect.isgenerator(outcome) else [outcome]:
                channel.put(("item", pickle.dumps(item)))
            channel.put(("end", None))
        except BaseException as error:  # handed to the parent, as spaces does
            channel.put(("error", repr(error)))

    process = context.Process(target=child)
    process.start()
    try:
        while True:
            kind, value = channel.get(timeout=60)  # a hung child fails the test instead of hanging it
            if kind == "end":
                return
            if kind == "error":
                raise RuntimeError(value)
            yield pickle.loads(value)
    finally:
        process.join(10)
        if process.is_alive():  # hung: killed, so that the test fails instead of waiting for it
            process.kill()


@pytest.fixture
def spaces(monkeypatch) -> FakeSpaces:
    fake = FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    return fake


def test_without_zero_gpu_nothing_is_wrapped(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def handler() -> None: ...

    assert not zero_gpu() and on_gpu(handler, 60) is handler


def test_a_comparison_streams_from_a_forked_gpu_call_and_the_engine_still_answers_here(runtime, spaces):
    service = CompareService(runtime)
    options = CompareOptions(max_new_tokens=8)

    def ask(question: str) -> Iterator[dict]:  # as the page's handler: plain values in, plain values out
        for state in service.stream(question, options):
            yield state.to_json()

    def texts(document: dict) -> dict[str, str]:
        return {name: answer["text"] for name, answer in document["answers"].items()}

    # The app has computed on this thread before the fork (a child inherits its torch threads' state).
    here = service.compare(QUESTION, options).to_json()
    streamed = list(on_gpu(ask, ZERO_GPU_COMPARE_S)(QUESTION))
    assert spaces.wrapped == [("ask", ZERO_GPU_COMPARE_S)]
    final = streamed[-1]
    assert len(streamed) > 2 and set(final["answers"]) == {"base", "rag", "finetuned", "hybrid"}
    assert all(answer["completion_tokens"] > 0 for answer in final["answers"].values())
    assert texts(final) == texts(here)
    # The app's own engine was not disturbed by the child.
    assert texts(service.compare(QUESTION, options).to_json()) == texts(here)


def test_the_page_and_the_api_ask_for_the_gpu(runtime, spaces):
    from playground.app import build_app

    build_app(runtime)
    assert ("run", ZERO_GPU_COMPARE_S) in spaces.wrapped and ("compare", ZERO_GPU_COMPARE_S) in spaces.wrapped
