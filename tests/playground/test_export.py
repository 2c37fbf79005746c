"""Exports: a comparison as JSON and Markdown, a session's comparisons as CSV, the vote log as JSONL and CSV; and
the page's download buttons, driven as Gradio calls them (no browser)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from adapters.errors import UserError
from playground import export
from playground.compare import Comparison
from playground.metrics import arm_label
from playground.runtime import ModelInfo
from playground.votes import Outcome, Vote, VoteLog

# Answers and names with what breaks naive tables and CSV: pipes, line breaks, commas, quotes, backticks.
ODD = 'It costs $249 | or "$199", on sale,\nsee ```tents.md``` and a\\b.\r\nDone.'
FIGURES = {
    "rag": (0.120, 0.031, 0.190, 1.406, 38.5, 412, 51),
    "hybrid": (0.120, 0.035, 0.201, 1.512, 36.2, 433, 49),
    "base": (0.0, 0.011, 0.040, 0.988, 41.0, 40, 40),
}


def _answer(arm: str, text: str, adapter: str | None) -> dict:
    retrieval_s, prefill_s, ttft_s, latency_s, tokens_per_s, prompt, completion = FIGURES[arm]
    return {
        "text": text,
        "adapter": adapter,
        "retrieval_s": retrieval_s,
        "prefill_s": prefill_s,
        "ttft_s": ttft_s,
        "latency_s": latency_s,
        "tokens_per_s": tokens_per_s,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "finish_reason": "stop",
        "timing": "interleaved",
    }


def comparison(question: str = "How much is the Summit 2 tent?", base: bool = True) -> Comparison:
    """A finished comparison with every field set: three arms answered, the fine-tuned one failed."""
    model = ModelInfo("Qwen/Qwen2.5-0.5B-Instruct", "hub", "my|adapter", note="from the local cache")
    rows = ["base", "rag", "finetuned", "hybrid"] if base else ["rag", "finetuned", "hybrid"]
    decoding = {"max_new_tokens": 64, "min_new_tokens": 1, "temperature": 0.0, "top_p": 0.95, "seed": 7}
    retrieval = {
        "top_k": 2,
        "mode": "fused",
        "files": ["tents.md"],
        "rerank": False,
        "stages": ["bm25", "dense", "fused"],
    }
    state = Comparison(question, model, rows, decoding, retrieval)
    state.chunks = [
        {
            "source": "tents.md",
            "content": "The Summit 2 tent costs $249 | on sale.\n```\nfenced",
            "score": 0.0328,
            "scores": {"bm25": 7.8, "dense": 0.61, "fused": 0.0328},
            "private": False,
            "used": [[4, 17]],
        },
        {
            "source": "my notes, v2.md",
            "content": 'Tents, quoted "here"',
            "score": 0.0161,
            "scores": {"bm25": 3.1, "dense": None, "fused": 0.0161},
            "private": True,
            "used": [],
        },
    ]
    texts = {"base": "I do not know.", "rag": ODD, "hybrid": "$249, per tents.md."}
    state.adapters = {arm: ("my|adapter" if arm in ("finetuned", "hybrid") else None) for arm in rows}
    state.answers = {arm: _answer(arm, texts[arm], state.adapters[arm]) for arm in rows if arm in texts}
    state.errors = {"finetuned": "The adapter 'my|adapter' could not be loaded (OSError: gone)"}
    state.texts = {arm: texts.get(arm, state.errors.get(arm, "")) for arm in rows}
    state.timing, state.retrieval_s, state.total_s, state.done = "interleaved", 0.12, 3.91, True
    return state


def test_json_round_trips_every_field():
    document = comparison().to_json()
    back = json.loads(export.comparison_json(document))
    assert back == document
    assert back["question"] == "How much is the Summit 2 tent?"
    assert back["model"] == {
        "base": "Qwen/Qwen2.5-0.5B-Instruct",
        "source": "hub",
        "adapter": "my|adapter",
        "note": "from the local cache",
    }
    assert [c["source"] for c in back["chunks"]] == ["tents.md", "my notes, v2.md"]
    assert set(back["chunks"][0]) == {"source", "content", "score", "scores", "private", "used"}
    assert back["answers"]["rag"]["text"] == ODD  # line breaks, quotes and pipes as they were
    for arm in ("base", "rag", "hybrid"):
        assert set(back["answers"][arm]) >= {*export.FIGURES, "text", "adapter", "finish_reason"}
    assert back["answers"]["finetuned"]["error"].startswith("The adapter")
    assert back["summary"].startswith("The hybrid answered")  # the plain comparison sentence
    assert back["decoding"]["seed"] == 7 and back["retrieval"]["top_k"] == 2 and back["timing"]["strategy"]
    assert (back["retrieval_s"], back["total_s"]) == (0.12, 3.91)


def _tables(markdown: str) -> list[list[str]]:
    """The Markdown tables, each as its lines."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def _cells(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line)) - 1  # unescaped pipes: one more than the cells


def _blocks(markdown: str) -> list[str]:
    """The contents of the fenced code blocks (any fence of 3+ backticks, closed by the same fence)."""
    return [m.group(2) for m in re.finditer(r"^(`{3,})text\n(.*?)\n\1$", markdown, re.S | re.M)]


def test_markdown_holds_each_arm_s_answer_and_figures_and_each_chunk_s_source():
    markdown = export.comparison_markdown(comparison().to_json())
    blocks = _blocks(markdown)
    assert blocks[0] == "How much is the Summit 2 tent?"
    assert ODD.replace("\r\n", "\n") in blocks  # verbatim (line ends made one kind), backticks and all
    assert "I do not know." in blocks and "$249, per tents.md." in blocks
    assert any(b.startswith("The adapter 'my|adapter' could not be loaded") for b in blocks)
    settings, figures = _tables(markdown)
    for table in (settings, figures):  # a pipe or line break inside a value never adds a cell or a row
        assert len({_cells(line) for line in table}) == 1, table
    assert "Qwen/Qwen2.5-0.5B-Instruct (hub)" in settings[2] and "from the local cache" in settings[3]
    assert any("top-k 2, mode fused, rerank off, files tents.md" in line for line in settings)
    assert any("seed 7" in line and "temperature 0.0" in line for line in settings)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in figures[2:]}
    assert rows["RAG"] == "| RAG | 0.120 | 0.031 | 0.190 | 1.406 | 38.5 | 412 | 51 | stop |"
    assert rows[arm_label("hybrid", "my\\|adapter")].endswith("| 1.512 | 36.2 | 433 | 49 | stop |")
    assert rows["Base (control)"].startswith("| Base (control) | 0.000 | 0.011 | 0.040 | 0.988 |")
    assert rows[arm_label("finetuned", "my\\|adapter")].endswith("| could not answer |")
    assert "**The hybrid answered" in markdown
    assert "### [1] `tents.md` · score 0.033 · BM25 7.800 · dense 0.610 · fused 0.033" in markdown
    assert "### [2] `my notes, v2.md` (your upload) · score 0.016 · BM25 3.100 · dense – · fused 0.016" in markdown
    assert "The Summit 2 tent costs $249 | on sale.\n```\nfenced" in blocks


def _read(path: str | Path) -> str:
    return Path(path).read_bytes().decode("utf-8")  # as written: a line break inside a CSV cell stays "\r\n"


def _parse(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def test_session_csv_has_the_header_and_one_row_per_comparison_and_arm():
    kept = export.remember(None, comparison().to_json())
    kept = export.remember(kept, comparison("Is it waterproof?", base=False).to_json())
    header, rows = _parse(export.comparisons_csv(kept))
    assert header == list(export.COMPARISON_COLUMNS)
    assert [(r["comparison"], r["arm"]) for r in rows] == [
        ("1", "base"),
        ("1", "rag"),
        ("1", "finetuned"),
        ("1", "hybrid"),
        ("2", "rag"),
        ("2", "finetuned"),
        ("2", "hybrid"),
    ]
    rag = rows[1]
    assert rag["answer"] == ODD  # commas, quotes, pipes and line breaks survive the round trip
    assert [float(rag[key]) for key in export.FIGURES] == list(FIGURES["rag"])
    assert rag["question"] == "How much is the Summit 2 tent?" and rows[4]["question"] == "Is it waterproof?"
    assert (rag["base_model"], rag["model_source"], rag["finish_reason"]) == (
        "Qwen/Qwen2.5-0.5B-Instruct",
        "hub",
        "stop",
    )
    assert (rag["top_k"], rag["retrieval_mode"], rag["rerank"], rag["files"]) == ("2", "fused", "False", "tents.md")
    assert rag["chunk_sources"] == "tents.md;my notes, v2.md"
    assert (rag["max_new_tokens"], rag["temperature"], rag["top_p"], rag["seed"]) == ("64", "0.0", "0.95", "7")
    assert (rag["timing"], rag["total_s"], rag["adapter"], rag["error"]) == ("interleaved", "3.91", "", "")
    assert rag["summary"].startswith("The hybrid answered") and rag["time"]
    failed = rows[2]
    assert failed["adapter"] == "my|adapter" and failed["error"].startswith("The adapter")
    assert failed["answer"] == "" and failed["latency_s"] == ""


def test_the_session_keeps_the_latest_comparisons_and_never_changes_the_old_list():
    kept: list[dict] = []
    for number in range(export.MAX_SESSION + 3):
        kept = export.remember(kept, {"question": f"Q{number}", "answers": {}})
    before = list(kept)
    export.remember(kept, {"question": "one more"})
    assert kept == before  # the session's State holds a new list, never a changed one
    assert len(kept) == export.MAX_SESSION and kept[-1]["question"] == f"Q{export.MAX_SESSION + 2}"
    assert kept[0]["question"] == "Q3" and all(doc["time"] for doc in kept)
    assert export.remember([], {"question": "Q", "time": "2026-11-30T13:02:00+00:00"})[0]["time"].startswith("2026")


def test_comparison_files_are_written_to_the_given_folder(tmp_path):
    kept, paths = export.comparison_files(comparison().to_json(), [], tmp_path)
    assert set(paths) == {"json", "md", "csv"} and len(kept) == 1
    assert all(path.is_relative_to(tmp_path) and path.parent == paths["json"].parent for path in paths.values())
    assert re.fullmatch(r"comparison-\d{8}T\d{6}Z\.json", paths["json"].name)
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == kept[-1]
    assert paths["md"].read_text(encoding="utf-8") == export.comparison_markdown(kept[-1])
    _, rows = _parse(_read(paths["csv"]))
    assert len(rows) == 4 and rows[1]["answer"] == ODD
    with pytest.raises(UserError, match="Ask a question first"):
        export.comparison_files(None, kept, tmp_path)


def test_old_download_folders_are_removed_when_a_new_one_is_made(tmp_path):
    old = export.write_files(tmp_path, {"a.txt": "old"})["a.txt"].parent
    recent = export.write_files(tmp_path, {"a.txt": "recent"})["a.txt"].parent
    an_hour_ago = time.time() - export.KEEP_S - 5
    os.utime(old, (an_hour_ago, an_hour_ago))
    new = export.write_files(tmp_path, {"b.bin": b"\x00\xff"})["b.bin"]
    assert not old.exists() and recent.exists() and new.read_bytes() == b"\x00\xff"


# --- the vote log ----------------------------------------------------------------------------------------------


def _votes() -> list[Vote]:
    settings = {
        "base_model": "tiny",
        "model_source": "demo",
        "decoding": {"max_new_tokens": 8},
        "retrieval": {"top_k": 3, "mode": "fused"},
        "timing": "interleaved",
    }
    return [
        Vote(
            "How much, really?", "rag", "finetuned", Outcome.A, None, "train", ODD, "B's", settings, "2026-11-30T13:02Z"
        ),
        Vote("Q2", "hybrid", "base", Outcome.BOTH_BAD, "train", None, "", "x, y", settings, "2026-11-30T13:03Z"),
    ]


def test_the_vote_log_downloads_as_stored_and_as_csv_with_every_field(tmp_path):
    log = VoteLog(tmp_path / "home")
    assert export.vote_log_files(log, tmp_path / "out") == {}  # nothing voted yet: nothing to download
    for vote in _votes():
        log.append(vote)
    with log.path.open("a", encoding="utf-8") as out:
        out.write("{not json\n")  # a damaged line: kept in the JSONL as stored, left out of the CSV
    paths = export.vote_log_files(log, tmp_path / "out")
    assert paths["jsonl"].read_bytes() == log.path.read_bytes()
    header, rows = _parse(_read(paths["csv"]))
    assert header == list(export.VOTE_COLUMNS) and len(rows) == 2
    fields = set(Vote.__dataclass_fields__)
    assert fields <= set(header)
    for row, vote in zip(rows, _votes(), strict=True):
        expected = vote.to_json()
        for key in fields - {"settings"}:
            assert row[key] == ("" if expected[key] is None else expected[key]), key
        assert json.loads(row["settings"]) == vote.settings
        assert (row["base_model"], row["model_source"]) == ("tiny", "demo")
    assert rows[0]["answer_a"] == ODD and rows[0]["vote"] == "a" and rows[1]["vote"] == "both_bad"


def _arena(home: Path, shared: bool = False):
    from playground.arena import ArenaService

    runtime = SimpleNamespace(settings=SimpleNamespace(home=home, shared=shared))
    return ArenaService(SimpleNamespace(runtime=runtime))


def test_the_arena_tab_offers_the_vote_log_once_there_is_a_vote_and_never_on_a_shared_demo(tmp_path):
    import gradio as gr

    from playground.ui import arena as arena_tab
    from playground.ui.compare import CompareControls

    arena = _arena(tmp_path / "home")
    arena.compare.setup = lambda: SimpleNamespace(concurrency=2)
    with gr.Blocks() as page:
        controls = CompareControls(*(gr.Textbox() for _ in range(9)))
        arena_tab.build(arena, gr.BrowserState(None), controls, downloads_root=tmp_path / "out")
    by_id = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}
    opened = next(fn.fn for fn in page.fns.values() if (by_id["arena-tab"]._id, "select") in fn.targets)
    jsonl, as_csv = by_id["arena-download-jsonl"], by_id["arena-download-csv"]
    assert opened()[jsonl] == {"__type__": "update", "value": None, "interactive": False}  # no vote yet
    arena.log.append(_votes()[0])
    shown = opened()
    assert shown[jsonl]["interactive"] and Path(shown[jsonl]["value"]).read_bytes() == arena.log.path.read_bytes()
    assert _parse(_read(shown[as_csv]["value"]))[1][0]["answer_a"] == ODD

    shared = _arena(tmp_path / "home", shared=True)  # the same log, on a shared demo: every visitor's questions
    assert shared.log.read().votes and shared.downloads(tmp_path / "out") == {}


# --- the page (no browser): the Side by side view's buttons and the command line's flag ---------------------------


class FakeCompare:
    """Stands in for CompareService: the hand-built comparison, streamed in two states."""

    def __init__(self) -> None:
        from playground.compare import CompareSetup

        self.model = ModelInfo("Qwen/Qwen2.5-0.5B-Instruct", "hub", "my|adapter")
        self._setup = CompareSetup(self.model, 2, 64, 0.0, 7, 2, False, "", "no reranker")
        self.support = None  # the sentence-level check runs after the answers, which this test does not reach

    def setup(self):
        return self._setup

    def sources(self, workspace: str | None = None) -> list[str]:
        return ["tents.md"]

    def stream(self, question: str, options) -> Iterator[Comparison]:
        state = comparison(question)
        state.done = False
        yield state
        state.done = True
        yield state


def test_the_side_by_side_view_offers_the_finished_comparison_and_the_session_for_download(tmp_path, monkeypatch):
    import gradio as gr

    from playground.ui import compare as compare_tab

    monkeypatch.setattr(export, "default_root", lambda: tmp_path)
    with gr.Blocks() as page:
        compare_tab.build(FakeCompare(), gr.BrowserState(None), ["my|adapter"], gr.Markdown())
    by_id = {block.elem_id: block for block in page.blocks.values() if getattr(block, "elem_id", None)}

    def handler(block_id: int, event: str):
        return next(fn.fn for fn in page.fns.values() if (block_id, event) in fn.targets)

    settings = [64, 0.0, 7, False, 2, "fused", [], False, "my|adapter"]  # CompareControls.inputs() order
    updates = list(handler(by_id["ask"]._id, "click")("How much?", True, True, None, *settings))
    latest = next(b for b in page.blocks.values() if isinstance(b, gr.State) and (b._id, "change") in _targets(page))
    asked = next(fn for fn in page.fns.values() if (by_id["ask"]._id, "click") in fn.targets)
    at = [block._id for block in asked.outputs].index(latest._id)  # where the finished document is yielded
    assert [update[at] is None for update in updates] == [True, False]  # the document only once finished
    document = updates[-1][at]
    assert document["question"] == "How much?" and document["answers"]["rag"]["text"] == ODD
    assert all(by_id[name].interactive is False for name in ("download-json", "download-markdown", "download-csv"))

    record = handler(latest._id, "change")
    assert record(None, []) == (gr.skip(), gr.skip(), gr.skip(), gr.skip())  # a new one is streaming
    kept, as_json, as_markdown, as_csv = record(document, [])
    kept, *_, as_csv = record(document | {"question": "Again?"}, kept)
    assert [doc["question"] for doc in kept] == ["How much?", "Again?"]
    assert as_json["interactive"] is True and as_json["value"].endswith(".json")
    assert json.loads(_read(as_json["value"]))["question"] == "How much?"
    assert "| RAG | 0.120 |" in _read(as_markdown["value"])
    _, rows = _parse(_read(as_csv["value"]))
    assert [row["comparison"] for row in rows] == ["1"] * 4 + ["2"] * 4
    assert all(str(tmp_path) in update["value"] for update in (as_json, as_markdown, as_csv))


def _targets(page) -> set:
    return {target for fn in page.fns.values() for target in fn.targets}


def test_the_compare_command_takes_markdown_or_json_not_both(capsys):
    from playground.__main__ import parser

    assert parser().parse_args(["compare", "Q?", "--markdown"]).markdown is True
    with pytest.raises(SystemExit):
        parser().parse_args(["compare", "Q?", "--markdown", "--json"])
    assert "not allowed with argument" in capsys.readouterr().err
