"""Questions from several people that wait for a busy engine are decoded together in its next batch: the same
greedy tokens as each alone, every person's rows streamed to that person, figures that say so."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from adapters.engine import DecodingSettings, Engine, GenerationRequest, GenerationResult, RowDone
from adapters.streaming import TokenEvent
from pipelines.prompts import plain_messages, rag_messages

GREEDY = DecodingSettings(max_new_tokens=8, min_new_tokens=8)
QUESTIONS = (
    "How much does the Summit 2 tent cost?",
    "What does the warranty cover?",
    "Is the stove allowed on planes?",
)


@pytest.fixture(scope="module")
def jobs(runtime) -> list[list[GenerationRequest]]:
    """Three people's comparisons: RAG + fine-tuned each, other questions."""
    adapter = runtime.model.adapter
    return [
        [
            GenerationRequest(rag_messages(question, [("notes.md", f"Note {n}: the answer is {n * 7}.")]), None),
            GenerationRequest(plain_messages(question), adapter),
        ]
        for n, question in enumerate(QUESTIONS)
    ]


@contextmanager
def busy(engine: Engine, waiting: int) -> Iterator[None]:
    """Holds the engine's worker until `waiting` jobs are queued behind it (the block starts them)."""
    gate = threading.Event()
    engine._worker.submit(gate.wait)
    try:
        yield
        deadline = time.monotonic() + 30
        while len(engine._waiting) < waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(engine._waiting) == waiting
    finally:
        gate.set()


def _in_threads(engine: Engine, jobs: list[list[GenerationRequest]], settings: list[DecodingSettings]):
    results: list[list[GenerationResult]] = [[] for _ in jobs]

    def run(index: int) -> None:
        results[index] = engine.generate(jobs[index], settings[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    return threads, results


def _alone(engine: Engine, requests: list[GenerationRequest]) -> list[str]:
    return [engine.generate([request], GREEDY, "sequential")[0].text for request in requests]


def test_waiting_questions_share_one_batch_and_answer_as_alone(runtime, jobs):
    engine = runtime.engine
    with busy(engine, waiting=3):
        threads, results = _in_threads(engine, jobs, [GREEDY] * 3)
    for thread in threads:
        thread.join(60)
    for requests, answers in zip(jobs, results, strict=True):
        assert [a.text for a in answers] == _alone(engine, requests)
        for answer in answers:
            assert answer.timing == "micro-batched" and answer.batch_rows == 6
            assert answer.completion_tokens == GREEDY.max_new_tokens
            assert answer.waited_s > 0 and answer.ttft_s >= answer.waited_s + answer.prefill_s - 1e-9
            assert answer.latency_s > answer.ttft_s and answer.tokens_per_s > 0


def test_a_batch_holds_no_more_rows_than_its_limit(runtime, jobs):
    engine = runtime.engine
    engine.batch_rows, limit = 4, engine.batch_rows
    try:
        with busy(engine, waiting=3):
            threads, results = _in_threads(engine, jobs, [GREEDY] * 3)
        for thread in threads:
            thread.join(60)
    finally:
        engine.batch_rows = limit
    timings = [{(a.timing, a.batch_rows) for a in answers} for answers in results]
    shared = {("micro-batched", 4)}
    assert sorted(t == shared for t in timings) == [False, True, True]  # two people together, a third alone
    assert next(t for t in timings if t != shared) <= {(engine.strategy, 1), (engine.strategy, 2)}


def test_sampled_and_exactly_timed_questions_run_alone(runtime, jobs):
    """Sampling in a bigger batch would draw other numbers; `sequential` asked for figures with nothing beside."""
    engine = runtime.engine
    sampled = DecodingSettings(max_new_tokens=8, temperature=0.8, seed=1)
    with busy(engine, waiting=3):
        threads, results = _in_threads(engine, jobs, [GREEDY, sampled, GREEDY])
    for thread in threads:
        thread.join(60)
    assert {a.timing for a in results[1]} == {engine.strategy}
    assert {(a.timing, a.batch_rows) for a in results[0] + results[2]} == {("micro-batched", 4)}


def test_closing_one_persons_stream_leaves_the_others_batch_running(runtime, jobs):
    engine = runtime.engine
    long = DecodingSettings(max_new_tokens=40, min_new_tokens=40)
    events: dict[str, list] = {"closed": [], "kept": []}

    def closer() -> None:
        stream = engine.stream(jobs[0], long)
        for event in stream:
            events["closed"].append(event)
            if isinstance(event, TokenEvent):
                stream.close()
                break

    def keeper() -> None:
        events["kept"] = list(engine.stream(jobs[1], long))

    with busy(engine, waiting=2):
        threads = [threading.Thread(target=closer), threading.Thread(target=keeper)]
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(60)
    done = [e.result for e in events["kept"] if isinstance(e, RowDone)]
    assert len(done) == 2 and all(r.completion_tokens == 40 and r.timing == "micro-batched" for r in done)
    assert not any(isinstance(e, RowDone) for e in events["closed"])
    assert engine.generate(jobs[2][:1], GREEDY)[0].completion_tokens == 8  # the worker is free again


def test_the_page_says_when_a_comparison_shared_its_batch(runtime):
    """Two people's comparisons (four arms each) that waited for the model: both say how they were measured."""
    from playground.compare import CompareOptions, CompareService

    service = CompareService(runtime)
    options = CompareOptions(max_new_tokens=6)
    found: dict[str, object] = {}

    def ask(question: str) -> None:
        found[question] = service.compare(question, options)

    with busy(runtime.engine, waiting=2):
        threads = [threading.Thread(target=ask, args=(q,)) for q in QUESTIONS[:2]]
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(120)
    for comparison in found.values():
        assert comparison.timing == "micro-batched"
        assert "joined their next batch" in comparison.timing_note and "Its batch held 8 rows" in comparison.timing_note
        for answer in comparison.answers.values():
            assert answer["batch_rows"] == 8 and answer["ttft_s"] >= answer["waited_s"] > 0
        rag = comparison.answers["rag"]
        assert rag["ttft_s"] >= rag["retrieval_s"] + rag["waited_s"]  # RAG's retrieval is still counted
