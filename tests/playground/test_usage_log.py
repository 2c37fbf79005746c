"""From RAG usage to a fine-tune: consent (off on a shared demo), a log per browser session that no other session
sees, the filter (marked good, or repeating a stretch of its chunks), the chat dataset it makes in the Fine-tune
tab's review table, and the job's card and registry record naming that source. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from adapters.datasets import load_dataset
from adapters.errors import UserError
from adapters.jobs.run import JobSpec, read_events, run_job
from adapters.jobs.view import job_view
from adapters.training.train import TrainResult
from playground.compare import CompareSetup, Comparison
from playground.config import PROJECT_ROOT, Settings
from playground.finetune import FinetuneService, adapter_rows, dataset_source
from playground.runtime import ModelInfo
from playground.usage_log import (
    MIN_SPAN_WORDS,
    NO_CHUNKS,
    NOT_FROM_CHUNKS,
    REPEATED,
    UsageLog,
    consent_default,
    select,
)
from playground.workspaces import Workspaces

CHUNK = "The Summit 2 tent costs $249 and weighs 4 lb 2 oz. It sleeps two people and packs into a small bag."
SOURCE = "from RAG usage log, 2 of 5 answers kept"


def document(question: str, answer: str, chunks: tuple[str, ...] = (CHUNK,), error: str = "") -> dict[str, Any]:
    """A finished comparison's JSON document, as the Compare tab hands it on."""
    state = Comparison(question, ModelInfo("tiny", "demo", None), ["rag"], {}, {"top_k": len(chunks)})
    state.chunks = [{"source": f"doc{i + 1}.md", "content": text} for i, text in enumerate(chunks)]
    if error:
        state.errors["rag"] = error
    else:
        state.answers["rag"] = {"text": answer}
    state.done = True
    return state.to_json()


@pytest.fixture
def ids() -> tuple[str, str]:
    return Workspaces.new_id(), Workspaces.new_id()


@pytest.fixture
def finetune(tmp_path: Path):
    """The Fine-tune service on a stand-in runtime: the demo base model's tokenizer, no model."""
    from transformers import AutoTokenizer

    runtime = SimpleNamespace(
        settings=Settings(home=tmp_path / "home", shared=False, general_data=""),
        model=SimpleNamespace(base="tiny", path="", adapter=None, is_demo=True),
        engine=SimpleNamespace(
            tokenizer=AutoTokenizer.from_pretrained(PROJECT_ROOT / "adapters" / "demo_weights" / "base"),
            adapters={},
            config=None,
        ),
    )
    service = FinetuneService(runtime)
    yield service
    service.jobs.close()


def _log_five(usage: UsageLog, workspace: str) -> list[str]:
    """Five answers: 2 kept (one marked good, one repeating its chunk), 3 dropped for each reason."""
    kept_good = usage.record(workspace, document("Do you sell stoves?", "Yes, we do."))
    usage.record(workspace, document("What does the Summit 2 cost?", "The Summit 2 tent costs $249."))
    usage.record(workspace, document("Summit 2 price?", "It is $249."))  # the number alone: no stretch of 5 words
    usage.record(workspace, document("Hello?", "Hi there, how can I help?", chunks=()))
    usage.record(workspace, document("What does the Summit 2 cost?", "The Summit 2 tent costs $249."))
    assert kept_good is not None
    usage.mark(workspace, kept_good.id, True)
    return [kept_good.id]


# ---- consent ---------------------------------------------------------------------------------------------------


def test_consent_is_off_on_a_shared_demo_and_on_for_the_servers_own_user(tmp_path):
    assert consent_default(Settings(home=tmp_path, shared=True)) is False
    assert consent_default(Settings(home=tmp_path, shared=False)) is True


# ---- the log -----------------------------------------------------------------------------------------------------


def test_each_session_has_its_own_append_only_log_and_never_sees_anothers(tmp_path, ids):
    mine, theirs = ids
    usage = UsageLog(tmp_path)
    first = usage.record(mine, document("How much is the Summit 2?", "It costs $249."))
    secret = usage.record(theirs, document("What is my order 4411's status?", "Order 4411 has shipped."))
    assert first is not None and secret is not None
    assert [a.question for a in usage.read(mine).answers] == ["How much is the Summit 2?"]
    assert [a.question for a in usage.read(theirs).answers] == ["What is my order 4411's status?"]
    files = sorted((tmp_path / "usage").iterdir())
    assert len(files) == 2 and not any(mine in f.name or theirs in f.name for f in files)  # the id is not shown
    assert "4411" not in usage.path(mine).read_text()

    with pytest.raises(UserError, match="not in this browser's log"):
        usage.mark(mine, secret.id, True)  # another session's answer cannot be marked from here
    before = usage.path(mine).read_bytes()
    usage.mark(mine, first.id, True)
    usage.mark(mine, first.id, False)  # the last mark counts
    after = usage.path(mine).read_bytes()
    assert after.startswith(before)  # appended, never rewritten
    assert [json.loads(line)["type"] for line in after.decode().splitlines()] == ["answer", "mark", "mark"]
    assert usage.read(mine).answers[0].good is False

    for bad in (None, "", "../../etc/passwd", "short"):
        with pytest.raises(UserError, match="reload"):
            usage.read(bad)
    assert usage.record(mine, document("Why?", "", error="the engine failed")) is None  # no RAG answer, no line

    with usage.path(mine).open("a") as log:
        log.write('{"type": "answer", "id": "x", "quest')  # a crash mid-write
    stored = usage.read(mine)
    assert len(stored.answers) == 1 and stored.problems == ["your usage log, line 4: not valid JSON, skipped"]
    assert usage.clear(mine) == 1 and usage.read(mine).answers == [] and usage.read(theirs).answers


# ---- the filter --------------------------------------------------------------------------------------------------


def test_kept_answers_are_marked_good_or_repeat_a_stretch_of_their_chunks(tmp_path, ids):
    usage = UsageLog(tmp_path)
    _log_five(usage, ids[0])
    four_words = usage.record(ids[0], document("Weight?", "Well, it weighs 4 lb 2 oz."))  # "weighs 4 lb 2 oz": 5
    three = usage.record(ids[0], document("Bag?", "It packs into a bag."))  # "packs into a": 3 words
    assert four_words is not None and three is not None
    selection = select(usage.read(ids[0]))
    assert [k.answer.question for k in selection.kept] == [
        "Do you sell stoves?",
        "What does the Summit 2 cost?",
        "Weight?",
    ]
    assert [k.why for k in selection.kept] == [
        "marked good",
        "repeats 6 words of chunk 1 (doc1.md)",
        f"repeats {MIN_SPAN_WORDS} words of chunk 1 (doc1.md)",
    ]
    assert selection.dropped == {NOT_FROM_CHUNKS: 2, NO_CHUNKS: 1, REPEATED: 1}
    assert selection.total == 7 and selection.source == "from RAG usage log, 3 of 7 answers kept"
    assert "Kept 3 of your 7 logged RAG answers: 1 marked good, 2 repeating 5+ words" in selection.note()


# ---- the dataset, the Fine-tune tab's button and the job's card ---------------------------------------------------


def test_the_kept_answers_become_chat_examples_question_to_answer_without_the_chunks(finetune, ids):
    _log_five(finetune.usage, ids[0])
    selection = finetune.usage_pairs(ids[0], consent=True)
    rows = selection.rows()
    assert rows[1] == ["What does the Summit 2 cost?", "The Summit 2 tent costs $249.", "doc1.md", rows[1][3]]
    path = finetune.save_pairs(rows, usage_total=selection.total)
    loaded = load_dataset(path)
    assert loaded.ok and loaded.format == "chat"
    assert [list(e.messages) for e in loaded.examples] == [
        [{"role": "user", "content": "Do you sell stoves?"}, {"role": "assistant", "content": "Yes, we do."}],
        [
            {"role": "user", "content": "What does the Summit 2 cost?"},
            {"role": "assistant", "content": "The Summit 2 tent costs $249."},
        ],
    ]
    assert CHUNK not in path.read_text()  # the prompt is the question alone, as the fine-tuned arm is asked
    assert dataset_source(path) == SOURCE
    edited = finetune.save_pairs(rows[:1], usage_total=selection.total)  # a row dropped in review
    assert dataset_source(edited) == "from RAG usage log, 1 of 5 answers kept"
    assert dataset_source(finetune.save_pairs(rows)) == ""  # pairs from documents say nothing


def test_the_button_refuses_with_one_line_when_the_log_is_off_empty_or_has_nothing_to_keep(finetune, ids):
    with pytest.raises(UserError, match="not logged: tick") as refused:
        finetune.usage_pairs(ids[0], consent=False)
    assert "\n" not in str(refused.value)
    with pytest.raises(UserError, match="log is empty"):
        finetune.usage_pairs(ids[0], consent=True)
    finetune.usage.record(ids[0], document("Hello?", "Hi there.", chunks=()))
    with pytest.raises(UserError, match=r"None of your 1 logged RAG answers can be used \(1 no chunks"):
        finetune.usage_pairs(ids[0], consent=True)


def test_the_job_card_and_the_adapters_record_name_the_source(finetune, ids, tmp_path, monkeypatch):
    import adapters.training.train
    from playground.ui.finetune import _status

    _log_five(finetune.usage, ids[0])
    selection = finetune.usage_pairs(ids[0], consent=True)
    path = finetune.save_pairs(selection.rows(), usage_total=selection.total)
    launched: list[JobSpec] = []
    monkeypatch.setattr(finetune.jobs, "submit", launched.append)
    finetune.launch(path, "", "quick demo")
    spec = launched[0]
    assert spec.source == SOURCE and spec.name == "from-rag-usage"

    def fake_train(train_spec, backend, on_event=None, should_stop=None):  # what is recorded, not the training
        (train_spec.output_dir / "adapter_config.json").write_text("{}")
        return TrainResult("completed", 1, 1, 1.0, None, 1.0, 0.1, train_spec.output_dir)

    monkeypatch.setattr(adapters.training.train, "train", fake_train)
    spec.id, job_dir = "job-1", tmp_path / "job-1"
    job_dir.mkdir()
    spec.write(job_dir)
    done = run_job(job_dir)
    assert done.state == "completed", done.error
    card = _status(job_view(job_dir, spec, None))
    assert f"held-out examples from from-rag-usage.jsonl ({SOURCE})" in card
    assert next(e for e in read_events(job_dir) if e.kind == "dataset").source == SOURCE
    assert finetune.registry.get(done.adapter).dataset["source"] == SOURCE
    assert adapter_rows(finetune)[0][2] == f"from-rag-usage.jsonl ({SOURCE})"


# ---- the page, driven as Gradio calls its handlers (no browser) ---------------------------------------------------


class FakeCompare:
    """The Compare service's page-facing part: setup, files, and one finished comparison streamed."""

    support = SimpleNamespace()

    def setup(self) -> CompareSetup:
        return CompareSetup(ModelInfo("tiny", "demo", None), 3, 16, 0.0, 0, 2, False, "", "no reranker")

    def sources(self, workspace: str | None = None) -> list[str]:
        return ["doc1.md"]


def _handler(page: gr.Blocks, name: str) -> Any:
    return next(fn.fn for fn in page.fns.values() if getattr(fn.fn, "__name__", "") == name)


def _by_id(page: gr.Blocks) -> dict[str, Any]:
    return {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}


@pytest.mark.parametrize("shared", [True, False])
def test_the_consent_box_starts_off_on_a_shared_demo(tmp_path, shared):
    from playground.ui import compare as compare_tab

    settings = Settings(home=tmp_path, shared=shared)
    with gr.Blocks() as page:
        controls = compare_tab.build(
            FakeCompare(), gr.BrowserState(None), [], gr.Markdown(), UsageLog(tmp_path), consent_default(settings)
        )
    assert controls.usage_consent is _by_id(page)["usage-consent"]
    assert controls.usage_consent.value is (not shared)


def test_a_person_logs_marks_and_trains_on_their_rag_answers(finetune, ids):
    from playground.ui import compare as compare_tab
    from playground.ui import finetune as finetune_tab

    workspace_id = ids[0]
    with gr.Blocks() as page:
        workspace = gr.BrowserState(None)
        controls = compare_tab.build(FakeCompare(), workspace, [], gr.Markdown(), finetune.usage, True)
        finetune_tab.build(finetune, controls.adapter, workspace, controls.usage_consent)
    log_answer, mark, adopt = (_handler(page, n) for n in ("log_answer", "mark", "adopt_usage"))

    asked = document("Do you sell stoves?", "Yes, we do.")
    assert log_answer(asked, False, workspace_id)[0] is None  # the box unticked: nothing is kept
    assert finetune.usage.read(workspace_id).answers == []
    with pytest.raises(gr.Error, match="not logged: tick"):
        adopt(workspace_id, False, 256)

    latest, good, note = log_answer(asked, True, workspace_id)
    assert good["interactive"] is True and "your log holds 1 answer" in note
    assert mark(True, latest, True, workspace_id) == "Marked good: kept for fine-tuning."
    log_answer(document("What does the Summit 2 cost?", "The Summit 2 tent costs $249."), True, workspace_id)
    log_answer(document("Hello?", "Hi.", chunks=()), True, workspace_id)

    note, rows, total, path, verdict, issues, _ = adopt(workspace_id, True, 256)
    assert [row[0] for row in rows] == ["Do you sell stoves?", "What does the Summit 2 cost?"]  # the review table
    assert total == 3 and "Kept 2 of your 3 logged RAG answers" in note and NO_CHUNKS in note
    assert "from-rag-usage.jsonl** is ready: 2 examples (chat)" in verdict and issues == []
    assert dataset_source(Path(path)) == "from RAG usage log, 2 of 3 answers kept"

    assert _handler(page, "delete")(workspace_id)[0] == "Forgot your log (3 answers deleted)."
    assert finetune.usage.read(workspace_id).answers == []
    with pytest.raises(gr.Error, match="log is empty"):
        adopt(workspace_id, True, 256)
