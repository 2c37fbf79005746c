"""User mistakes end in one line naming what is wrong, not in a traceback."""

from __future__ import annotations

import socket

import gradio as gr
import pytest

from pipelines.embedder import resolve_embedder
from playground.app import launch
from playground.questions import load_questions

GOOD = '{"question": "q", "answer": "a", "fact": "f", "source": "s.txt"}'


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"missing\.jsonl: no such question file"),
        (b"\xff\xfe\n", r"^questions\.jsonl: not UTF-8 text$"),
        (f"{GOOD}\n{{not json\n".encode(), r"^questions\.jsonl, line 2: not valid JSON"),
        (f"{GOOD}\n\n[1, 2]\n".encode(), r"^questions\.jsonl, line 3: expected a JSON object, got list$"),
        (b'{"question": "q"}\n', r"^questions\.jsonl, line 1: missing or empty field 'reference'$"),
        (b"\n\n", r"^questions\.jsonl: no questions$"),
    ],
    ids=["missing", "not-utf8", "malformed", "not-an-object", "missing-field", "empty"],
)
def test_a_bad_question_file_is_one_line_naming_file_and_line(tmp_path, content: bytes | None, expected: str):
    path = tmp_path / ("missing.jsonl" if content is None else "questions.jsonl")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as raised:
        load_questions(path)
    assert "\n" not in str(raised.value)


def test_a_folder_given_as_question_file(tmp_path):
    with pytest.raises(ValueError, match="no such question file"):
        load_questions(tmp_path)


def test_a_good_question_file_loads(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_text(f"{GOOD}\n\n{GOOD}\n")
    assert [item.source for item in load_questions(path).items] == ["s.txt", "s.txt"]


def test_an_embedder_folder_without_a_model(tmp_path):
    with pytest.raises(ValueError, match="a folder without a model in it"):
        resolve_embedder(str(tmp_path))


def test_serving_on_a_busy_port_is_one_line(capsys: pytest.CaptureFixture[str], in_process_launch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with gr.Blocks() as app:
            gr.Markdown("hello")
        with pytest.raises(SystemExit) as raised:
            launch(app, "127.0.0.1", port, share=False)
    assert raised.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"error: cannot serve on 127.0.0.1:{port} (") and "--port" in lines[-1]
