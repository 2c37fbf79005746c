"""Sentence-level support on constructed examples: a fake embedder gives each sentence a chosen direction, so
every cosine is known in advance (no model is loaded)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from adapters.datasets import load_dataset, split_holdout
from adapters.errors import UserError
from adapters.registry import METADATA, AdapterRegistry
from playground.compare import Comparison
from playground.config import Settings
from playground.runtime import ModelInfo
from playground.support import CHUNK, NONE, TRAINING, SupportChecker, SupportSettings, numbers, split_sentences
from playground.support_data import SupportService, TrainingData, TrainingSets, training_data
from playground.ui.support import answer_html, view

RETURNS, VOICE, TENT, MOON, WEEK = np.eye(5)
# The cosine of ON_EDGE with RETURNS is exactly 0.7 (as the page rounds it: 0.700).
ON_EDGE = 0.7 * RETURNS + math.sqrt(1 - 0.7**2) * MOON

CHUNKS = [
    {"source": "summit-2-tent.md", "content": "The Summit 2 tent costs $249."},
    {"source": "return-policy.md", "content": "Unused items can be returned within 45 days. Refunds take a week."},
]
TRAIN = [
    ("How much is the Summit 2?", "The Summit 2 tent costs $249."),
    ("Thanks!", "Hey trailblazer! Happy trails from Pinecrest!"),
]


class FakeEmbedder:
    """Known sentences get their direction; any other text is an error, so a test cannot pass by accident."""

    def __init__(self) -> None:
        self.vectors = {
            "The Summit 2 tent costs $249.": TENT,
            "Unused items can be returned within 45 days.": RETURNS,
            "Refunds take a week.": WEEK + 0.3 * MOON,
            "Hey trailblazer!": VOICE,
            "Happy trails from Pinecrest!": 0.9 * VOICE + 0.1 * TENT,
            # answer sentences
            "You can send unused items back within 45 days.": 0.95 * RETURNS + 0.1 * MOON,
            "Happy trails!": VOICE,
            "The moon is made of cheese.": MOON,
            "Returns are accepted for 45 days.": ON_EDGE,
            "You can send unused items back within 60 days.": 0.95 * RETURNS + 0.1 * MOON,
        }
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([self.vectors[text] for text in texts])


def write_dataset(path: Path, pairs: Sequence[tuple[str, str]], blank_first: bool = True) -> Path:
    lines = [""] if blank_first else []  # a blank first line: the examples sit on lines 2 and 3
    for question, answer in pairs:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def training(tmp_path: Path, embedder: FakeEmbedder):
    data = TrainingData("voice", write_dataset(tmp_path / "train.jsonl", TRAIN))
    found, note = TrainingSets(embedder).get(data)
    assert found is not None and note == ""
    return found


def checker(embedder: FakeEmbedder, chunk: float = 0.7, train: float = 0.75) -> SupportChecker:
    return SupportChecker(embedder, SupportSettings(chunk, train))


def test_one_sentence_from_a_chunk_one_from_training_one_from_neither(embedder, training):
    answer = "You can send unused items back within 45 days. Happy trails! The moon is made of cheese."
    report = checker(embedder).check({"finetuned": answer}, CHUNKS, training)
    first, second, third = report.answers["finetuned"].sentences
    assert (first.mark, first.chunk, first.source) == (CHUNK, 2, "return-policy.md")
    assert first.evidence == "Unused items can be returned within 45 days."
    assert first.similarity == pytest.approx(0.995, abs=1e-3)
    assert (second.mark, second.line, second.source, second.similarity) == (TRAINING, 3, "train.jsonl", 1.0)
    assert second.evidence == "Hey trailblazer!"
    assert (third.mark, third.chunk, third.line) == (NONE, None, None)
    assert "closest chunk [2]" in third.note and "below 0.70" in third.note
    assert "Training examples: 2 answers of adapter voice from train.jsonl" in report.notes


def test_the_report_as_json_keeps_every_mark_and_counts_them(embedder, training):
    answer = "You can send unused items back within 45 days. Happy trails! The moon is made of cheese."
    found = checker(embedder).check({"finetuned": answer, "rag": ""}, CHUNKS, training).to_json()
    tuned = found["answers"]["finetuned"]
    assert tuned["counts"] == {CHUNK: 1, TRAINING: 1, NONE: 1}
    assert [(s["mark"], s["chunk"], s["line"]) for s in tuned["sentences"]] == [
        (CHUNK, 2, None),
        (TRAINING, None, 3),
        (NONE, None, None),
    ]
    assert tuned["sentences"][0]["evidence"] == "Unused items can be returned within 45 days."
    assert found["answers"]["rag"] == {"counts": {CHUNK: 0, TRAINING: 0, NONE: 0}, "note": "No answer to check.",
                                       "sentences": []}  # fmt: skip
    assert "Sentence-level support" in found["method"] and found["notes"]
    json.dumps(found)  # plain JSON, as the API sends it


def test_the_threshold_is_inclusive_at_the_shown_precision(embedder, training):
    answer = {"rag": "Returns are accepted for 45 days."}
    at = checker(embedder, chunk=0.7).check(answer, CHUNKS, training).answers["rag"].sentences[0]
    assert (at.mark, at.chunk, at.similarity) == (CHUNK, 2, 0.7)
    above = checker(embedder, chunk=0.701).check(answer, CHUNKS, training).answers["rag"].sentences[0]
    assert (above.mark, above.similarity) == (NONE, 0.7)
    assert "closest chunk [2]: 0.700 (below 0.70)" in above.note


def test_a_number_the_chunk_does_not_state_is_not_supported(embedder, training):
    report = checker(embedder).check({"rag": "You can send unused items back within 60 days."}, CHUNKS, training)
    sentence = report.answers["rag"].sentences[0]
    assert sentence.mark == NONE
    assert "closest chunk [2]: 0.995, but it does not state 60" in sentence.note


def test_an_adapter_without_recorded_training_data_says_so(tmp_path, embedder):
    folder = tmp_path / "adapters" / "by-hand"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "base"}))
    data = training_data("by-hand", AdapterRegistry(tmp_path / "adapters"), tmp_path / "jobs", None)
    found, note = TrainingSets(embedder).get(data)
    assert found is None and note == "Adapter by-hand has no recorded training data (not trained here)."
    report = checker(embedder).check({"finetuned": "Happy trails!"}, CHUNKS, found, note)
    assert report.answers["finetuned"].sentences[0].mark == NONE  # still checked against the chunks
    assert note in report.notes


def test_a_registered_adapter_is_compared_with_what_its_job_trained_on(tmp_path, embedder):
    pairs = [*TRAIN, ("Where is the tent?", "The Summit 2 tent costs $249."), ("Bye", "Hey trailblazer!")]
    dataset = write_dataset(tmp_path / "mine.jsonl", pairs, blank_first=False)
    jobs, adapters = tmp_path / "jobs", tmp_path / "adapters"
    (jobs / "job-1").mkdir(parents=True)
    spec = {"id": "job-1", "name": "mine", "base_model": "b", "base_name": "b", "dataset": str(dataset)}
    (jobs / "job-1" / "spec.json").write_text(json.dumps({**spec, "adapters_dir": str(adapters), "holdout": 0.5}))
    (adapters / "mine").mkdir(parents=True)
    (adapters / "mine" / "adapter_config.json").write_text("{}")
    (adapters / "mine" / METADATA).write_text(json.dumps({"name": "mine", "base_model": "b", "job": "job-1"}))
    found, note = TrainingSets(embedder).get(training_data("mine", AdapterRegistry(adapters), jobs, None))
    trained = split_holdout(load_dataset(dataset).examples, 0.5)[0]  # the job's seeded split, redone
    assert note == "" and found is not None and len(found.lines) < 4
    assert found.lines == [example.line for example in trained]


def test_the_demo_adapter_reads_the_fine_tuning_set(tmp_path):
    data = training_data("pinecrest-voice", AdapterRegistry(tmp_path / "adapters"), tmp_path / "jobs", Path("t.jsonl"))
    assert data.path == Path("t.jsonl") and "lessons" in data.note


def test_training_answers_are_embedded_once_per_adapter_until_the_file_changes(tmp_path, embedder):
    sets = TrainingSets(embedder)
    path = write_dataset(tmp_path / "train.jsonl", TRAIN)
    sets.get(TrainingData("voice", path))
    sets.get(TrainingData("voice", path))
    assert len(embedder.calls) == 1
    write_dataset(path, TRAIN[:1])
    found, _ = sets.get(TrainingData("voice", path))
    assert len(embedder.calls) == 2 and found is not None and found.lines == [2]


def test_empty_answers_and_failed_arms_embed_nothing(embedder, training):
    answers = {"rag": "", "finetuned": "   ", "hybrid": ""}
    report = checker(embedder).check(answers, CHUNKS, training, errors={"hybrid": "The adapter could not load"})
    assert embedder.calls == [["The Summit 2 tent costs $249.", "Hey trailblazer!", "Happy trails from Pinecrest!"]]
    assert report.answers["rag"].sentences == [] and report.answers["rag"].note == "No answer to check."
    assert report.answers["hybrid"].note == "No answer: The adapter could not load"
    assert "No answer to check." in answer_html("RAG", report.answers["rag"])


def test_no_chunks_is_said(embedder, training):
    report = checker(embedder).check({"finetuned": "Happy trails!"}, [], training)
    assert report.answers["finetuned"].sentences[0].mark == TRAINING
    assert report.notes[0] == "No chunks were retrieved: no sentence can be supported by one."


def test_the_service_marks_a_finished_comparison(tmp_path, embedder):
    dataset = write_dataset(tmp_path / "train.jsonl", TRAIN)
    settings = Settings(home=tmp_path, finetune_data=dataset)
    runtime = type("Runtime", (), {"settings": settings, "model": ModelInfo("demo", "demo", "pinecrest-voice")})()
    state = Comparison("Q?", runtime.model, ["base", "rag", "finetuned"], {}, chunks=CHUNKS, done=True)
    state.texts = {"base": "The moon is made of cheese.", "rag": "Returns are accepted for 45 days.", "finetuned": ""}
    state.adapters = {"base": None, "rag": None, "finetuned": "pinecrest-voice"}
    report = SupportService(runtime, embedder).check(state)
    assert list(report.answers) == ["rag", "finetuned"]  # the base control is not checked
    assert report.answers["rag"].sentences[0].mark == CHUNK
    assert "0.70" in report.method and "0.75" in report.method  # the thresholds are stated
    method, rag, finetuned, hybrid = view(report)
    assert "Training examples: 2 answers of adapter pinecrest-voice from train.jsonl" in method
    assert "chunk [2] return-policy.md 0.70" in rag and "support-chunk" in rag
    assert "No answer to check." in finetuned and hybrid == ""


def test_thresholds_outside_zero_to_one_are_refused():
    with pytest.raises(UserError, match="PLAYGROUND_SUPPORT_CHUNK is a cosine threshold between 0 and 1"):
        SupportSettings(1.5, 0.7)


def test_sentences_and_numbers():
    assert split_sentences("One. Two!  Three?\n\n- four") == ["One.", "Two!", "Three?", "- four"]
    assert split_sentences("") == []
    assert numbers("It costs $1,299.00 and weighs 4.5 lb; call 1-800-555-0142.") == {
        "1299.00",
        "4.5",
        "1",
        "800",
        "555",
        "0142",
    }
