"""Training data problems name the file, the line and the field."""

from __future__ import annotations

import json

import pytest

from adapters.datasets import DatasetError, load_chat_jsonl, tokenize_for_training
from playground.config import SAMPLE_DATA


def write(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]})


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "data.jsonl, line 2: not valid JSON"),
        (json.dumps({"text": "x"}), "data.jsonl, line 2: missing field 'messages'"),
        (json.dumps({"messages": [{"role": "bot", "content": "x"}]}), "line 2: field 'messages[0].role'"),
        (json.dumps({"messages": [{"role": "user", "content": ""}]}), "line 2: field 'messages[0].content'"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}), "line 2: the last message must have role"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, bad, expected):
    with pytest.raises(DatasetError) as error:
        load_chat_jsonl(write(tmp_path, [GOOD, bad]))
    assert expected in str(error.value)


def test_sample_finetuning_set_loads():
    examples = load_chat_jsonl(SAMPLE_DATA / "finetune" / "train.jsonl")
    assert len(examples) >= 300


def test_only_the_answer_is_trained(runtime):
    tokenizer = runtime.engine.tokenizer
    messages = [{"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Here."}]
    ids, labels = tokenize_for_training(tokenizer, messages, 64)
    trained = [t for t, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(trained, skip_special_tokens=True) == "Here."
    assert trained[-1] == tokenizer.eos_token_id
