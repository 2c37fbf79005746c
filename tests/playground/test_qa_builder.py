"""Question–answer pairs from documents: templates offline, the model's questions where it can write them."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.datasets import load_dataset
from pipelines.indexing import chunks_of
from playground.config import SAMPLE_DATA
from playground.qa_builder import build_pairs, pairs_from_rows, passages, template_pair

KB = SAMPLE_DATA / "knowledge_base"


def _chunks() -> list[tuple[str, str]]:
    return [(p.name, p.read_text()) for p in sorted(KB.iterdir())]


def test_templates_ask_about_the_sentences_own_subject():
    pair = template_pair("The Summit 2 tent costs $249.", "summit-2-tent.md")
    assert pair is not None and pair.question == "How much does the Summit 2 tent cost?"
    assert pair.answer == "The Summit 2 tent costs $249." and pair.method == "template: price"
    assert template_pair("Returns are easy and friendly.", "x.md") is None  # no template fits: no pair


def test_offline_pairs_are_transparent_and_grounded():
    report = build_pairs(_chunks(), engine=None, limit=500)
    assert len(report.pairs) > 50 and "templates" in report.note
    texts = {name: text for name, text in _chunks()}
    for pair in report.pairs:
        assert pair.question.endswith("?") and pair.method.startswith("template: ")
        assert pair.answer in texts[pair.source]  # every answer is the document's own sentence
    assert len({p.question.lower() for p in report.pairs}) == len(report.pairs)
    assert len(build_pairs(_chunks(), engine=None, limit=7).pairs) == 7


@dataclass
class _Result:
    text: str


class _FakeWriter:
    """Stands in for a real instruct model: every other passage gets a usable question."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, requests, settings):
        outputs = []
        for request in requests:
            self.calls += 1
            passage = request.messages[0]["content"].split("Passage:\n", 1)[1]
            topic = passage.split()[1] if len(passage.split()) > 1 else "it"
            outputs.append(_Result(f"What should I know about the {topic} here?" if self.calls % 2 else "blah blah"))
        return outputs


def test_model_written_questions_with_template_fallback():
    found = passages(_chunks())
    writer = _FakeWriter()
    report = build_pairs(_chunks(), engine=writer, limit=20)  # type: ignore[arg-type]
    methods = [p.method for p in report.pairs]
    assert methods.count("model") == 10 and len(report.pairs) == 20
    assert "10 questions written by the model" in report.note and "not usable" in report.note
    assert writer.calls == 20 and len(found) > 20


def test_review_rows_and_saved_dataset(runtime, tmp_path):
    rows = [["How much is the Summit 2?", "It costs $249.", "summit-2-tent.md", "template: price"], ["", "x", "", ""]]
    assert [p.question for p in pairs_from_rows(rows)] == ["How much is the Summit 2?"]
    from playground.finetune import FinetuneService

    service = FinetuneService(runtime)
    try:
        report = service.build_from_documents("shared", None, limit=30)
        assert len(report.pairs) == 30
        path = service.save_pairs(report.rows())
        loaded = load_dataset(path)
        assert loaded.ok and len(loaded.examples) == 30
        assert len(chunks_of(runtime.store)) > 0
    finally:
        service.jobs.close()
