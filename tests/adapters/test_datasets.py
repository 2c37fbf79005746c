"""Training data: every format becomes chat messages, and every problem names the file, the line and the field."""

from __future__ import annotations

import json

import pytest

from adapters import datasets
from adapters.datasets import (
    ChatExample,
    DatasetError,
    dataset_stats,
    find_duplicates,
    load_chat_jsonl,
    load_dataset,
    split_holdout,
    tokenize_for_training,
    write_chat_jsonl,
)
from playground.config import SAMPLE_DATA

TRAIN = SAMPLE_DATA / "finetune" / "train.jsonl"
FORMATS = SAMPLE_DATA / "finetune" / "formats"


def write(tmp_path, lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def chat(question, answer):
    return json.dumps({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})


def qa(question, answer):
    return ({"role": "user", "content": question}, {"role": "assistant", "content": answer})


def problems(loaded):
    return "\n".join(map(str, loaded.issues))


GOOD = chat("Hi?", "Hello.")
ALPACA = json.dumps({"instruction": "Hi?", "input": "", "output": "Hello."})
SHAREGPT = json.dumps({"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]})


@pytest.fixture(scope="module")
def tokenizer():
    """A small chat tokenizer trained on the sample set in well under a second (the demo model's own kind)."""
    from adapters.demo_model import train_tokenizer

    texts = [m["content"] for e in load_chat_jsonl(TRAIN) for m in e.messages]
    return train_tokenizer(texts, 512)


# ---------------------------------------------------------------- the first-problem loader other modules use


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "data.jsonl, line 2: not valid JSON"),
        (json.dumps({"text": "x"}), "data.jsonl, line 2, field 'messages': is missing"),
        (
            json.dumps({"messages": [{"role": "bot", "content": "x"}]}),
            "data.jsonl, line 2, field 'messages[0].role': is 'bot'; expected one of system, user, assistant",
        ),
        (json.dumps({"messages": [{"role": "user", "content": ""}]}), "line 2, field 'messages[0].content': is empty"),
        (json.dumps({"messages": [{"role": "user", "content": "q"}]}), "line 2, field 'messages[0]': the last message"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, bad, expected):
    with pytest.raises(DatasetError) as error:
        load_chat_jsonl(write(tmp_path, [GOOD, bad]))
    assert expected in str(error.value)


def test_sample_finetuning_set_loads():
    loaded = load_dataset(TRAIN)
    assert loaded.ok and loaded.format == "chat" and loaded.rows == len(loaded.examples) >= 300
    assert [e.messages for e in load_chat_jsonl(TRAIN)] == [e.messages for e in loaded.examples]


def test_only_the_answer_is_trained(tokenizer):
    messages = [{"role": "user", "content": "Where?"}, {"role": "assistant", "content": "Here."}]
    ids, labels = tokenize_for_training(tokenizer, messages, 64)
    trained = [t for t, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(trained, skip_special_tokens=True) == "Here."
    assert trained[-1] == tokenizer.eos_token_id


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "text", "fmt", "messages", "line"),
    [
        ("data.jsonl", f"\n{GOOD}\n", "chat", qa("Hi?", "Hello."), 2),
        (
            "data.jsonl",
            json.dumps({"instruction": "Summarise.", "input": "A long text.", "output": "Short."}),
            "alpaca",
            qa("Summarise.\n\nA long text.", "Short."),
            1,
        ),
        (
            "data.json",
            json.dumps([{"instruction": "Hi?", "output": "Hello."}], indent=2),
            "alpaca",
            qa("Hi?", "Hello."),
            2,
        ),
        (
            "data.jsonl",
            json.dumps(
                {
                    "conversations": [
                        {"from": "system", "value": "Be brief."},
                        {"from": "human", "value": "Hi?"},
                        {"from": "gpt", "value": "Hello."},
                    ]
                }
            ),
            "sharegpt",
            ({"role": "system", "content": "Be brief."}, *qa("Hi?", "Hello.")),
            1,
        ),
        (
            "data.jsonl",
            json.dumps(
                {"conversations": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yo."}]}
            ),
            "sharegpt",
            qa("Hi?", "Yo."),
            1,
        ),
        ("qa.csv", '\ufeff Question , ANSWER \nnote,"two\nlines"\n', "csv", qa("note", "two\nlines"), 2),
        (
            "qa.csv",
            'question,answer,system\n"Hi, you?",Hello.,Be brief.\n',
            "csv",
            ({"role": "system", "content": "Be brief."}, *qa("Hi, you?", "Hello.")),
            2,
        ),
    ],
)
def test_each_format_becomes_chat_messages(tmp_path, name, text, fmt, messages, line):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    loaded = load_dataset(path)
    assert loaded.ok, problems(loaded)
    assert loaded.format == fmt
    assert loaded.examples == [ChatExample(messages, line)]


def test_csv_lines_count_quoted_newlines(tmp_path):
    path = write(tmp_path, ["question,answer", 'a,"one\ntwo"', "b,", "c,d"], "qa.csv")
    loaded = load_dataset(path)
    assert [e.line for e in loaded.examples] == [2, 5]
    assert problems(loaded) == "qa.csv, line 4, field 'answer': is empty"


@pytest.mark.parametrize(
    ("name", "fmt"), [("alpaca.json", "alpaca"), ("sharegpt.jsonl", "sharegpt"), ("qa.csv", "csv")]
)
def test_bundled_format_examples_load(name, fmt):
    loaded = load_dataset(FORMATS / name)
    assert loaded.ok, problems(loaded)
    assert loaded.format == fmt and 10 <= len(loaded.examples) <= 20
    for example in loaded.examples:
        assert example.answer.startswith("Hey trailblazer!") and example.answer.endswith("Happy trails from Pinecrest!")
    assert not find_duplicates(loaded.examples)


def test_the_first_example_sets_the_format_and_other_lines_are_reported(tmp_path):
    loaded = load_dataset(write(tmp_path, ['{"note": 1}', ALPACA, GOOD, SHAREGPT]))
    assert loaded.format == "alpaca" and [e.line for e in loaded.examples] == [2]
    assert problems(loaded).splitlines() == [
        "data.jsonl, line 1: has none of the fields 'messages' (chat), 'instruction'/'output' (Alpaca) "
        "or 'conversations' (ShareGPT)",
        "data.jsonl, line 3: looks like chat, but the file is read as Alpaca (its first example); "
        "use one format per file",
        "data.jsonl, line 4: looks like ShareGPT, but the file is read as Alpaca (its first example); "
        "use one format per file",
    ]


def test_an_explicit_format_overrides_detection_and_extension(tmp_path):
    loaded = load_dataset(write(tmp_path, [GOOD]), format="alpaca")
    assert loaded.format == "alpaca" and "line 1: looks like chat, but the file is read as Alpaca" in problems(loaded)
    assert load_dataset(write(tmp_path, [GOOD], "data.txt"), format="chat").ok
    assert load_dataset(write(tmp_path, ["question,answer", "q,a"], "qa.txt"), format="csv").ok
    with pytest.raises(ValueError, match="format is 'yaml'"):
        load_dataset(write(tmp_path, [GOOD]), format="yaml")


# ---------------------------------------------------------------- problems


@pytest.mark.parametrize(
    ("name", "lines", "expected"),
    [
        (
            "data.jsonl",
            [ALPACA, '{"instruction": "q", "output": 3}'],
            "data.jsonl, line 2, field 'output': must be text, got a number",
        ),
        (
            "data.jsonl",
            [ALPACA, '{"instruction": " ", "output": "a"}'],
            "data.jsonl, line 2, field 'instruction': is empty",
        ),
        (
            "data.jsonl",
            [ALPACA, '{"instruction": "q", "input": ["x"], "output": "a"}'],
            "line 2, field 'input': must be text, got a list",
        ),
        (
            "data.jsonl",
            [SHAREGPT, '{"conversations": [{"from": "human", "value": "q"}, {"from": "tool", "value": "a"}]}'],
            "data.jsonl, line 2, field 'conversations[1].from': is 'tool'; expected one of human, user, gpt,",
        ),
        (
            "data.jsonl",
            [SHAREGPT, '{"conversations": ["q", "a"]}'],
            "line 2, field 'conversations[0]': must be an object with 'from' and 'value', got text",
        ),
        (
            "data.jsonl",
            [SHAREGPT, '{"conversations": []}'],
            "line 2, field 'conversations': is an empty list",
        ),
        ("data.jsonl", [GOOD, "[1, 2]"], "data.jsonl, line 2: must be a JSON object, got a list"),
        (
            "data.jsonl",
            [
                GOOD,
                json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}),
            ],
            "line 2, field 'messages': needs at least one user message",
        ),
        ("qa.csv", ["question,answer", "q,a", "q2,  "], "qa.csv, line 3, field 'answer': is empty"),
        ("qa.csv", ["question,answer", "q,a", "q2"], "qa.csv, line 3, field 'answer': is missing"),
        ("qa.csv", ["question,answer", "q,a", "q2,a,b"], "qa.csv, line 3: has 3 values but the header has 2 columns"),
        ("qa.csv", ["question,answer", "q,a", '"q2,a'], "qa.csv, line 3: not valid CSV"),
        (
            "qa.csv",
            ["question,reply", "q,a"],
            "qa.csv, line 1: the header has no 'answer' column (found: question, reply)",
        ),
        (
            "data.json",
            ["[", "  " + ALPACA + ",", '  {"instruction": "q"}', "]"],
            "data.json, line 3 (item 2), field 'output': is missing",
        ),
        ("data.json", [f"[{ALPACA}, {ALPACA} {ALPACA}]"], "data.json, line 1: not valid JSON (Expecting ',' delimiter"),
        ("data.json", ["[", ALPACA + ",", "]"], "data.json, line 3: not valid JSON (Expecting value at column 1)"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path, name, lines, expected):
    loaded = load_dataset(write(tmp_path, lines, name))
    assert not loaded.ok
    assert expected in problems(loaded)


def test_every_problem_is_reported(tmp_path):
    bad = [json.dumps({"messages": [{"role": "user", "content": 1}, {"role": "bot", "content": "a"}]}), "{", "7"]
    loaded = load_dataset(write(tmp_path, [GOOD, *bad, GOOD]))
    assert [(i.line, i.field) for i in loaded.issues] == [
        (2, "messages[0].content"),
        (2, "messages[1].role"),
        (3, None),
        (4, None),
    ]
    assert [e.line for e in loaded.examples] == [1, 5] and loaded.rows == 5
    with pytest.raises(DatasetError) as error:
        loaded.check()
    assert len(error.value.issues) == 4 and str(error.value).count("\n") == 3


def test_problems_beyond_the_cap_are_counted(tmp_path):
    loaded = load_dataset(write(tmp_path, [GOOD] + ["{"] * 10), max_issues=3)
    assert [i.line for i in loaded.issues] == [2, 3, 4, None]
    assert str(loaded.issues[-1]) == "data.jsonl: … and 7 more problems"


def test_a_file_without_valid_rows_says_so(tmp_path):
    loaded = load_dataset(write(tmp_path, ["{", '{"messages": []}', "", "[]"]))
    assert not loaded.ok and not loaded.examples
    assert str(loaded.issues[-1]) == "data.jsonl: no valid examples: 3 lines, all with problems (see above)"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("data.jsonl", b" \n\n", "data.jsonl: the file is empty"),
        ("data.jsonl", GOOD.encode() + b"\n\xff\xfe{}\n", "data.jsonl, line 2: is not UTF-8 text (byte 0xff)"),
        ("data.txt", GOOD.encode(), "data.txt: unknown file type '.txt'; use .jsonl, .json or .csv"),
        ("data.json", b"[]", "data.json: has no examples"),
        ("qa.csv", b"question,answer\n", "qa.csv: has no examples"),
    ],
)
def test_file_level_problems(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    loaded = load_dataset(path)
    assert not loaded.ok and not loaded.examples
    assert problems(loaded).startswith(expected)


def test_oversized_and_missing_files(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "MAX_DATASET_BYTES", 10)
    assert "the limit is" in problems(load_dataset(write(tmp_path, [GOOD])))
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "absent.jsonl")


# ---------------------------------------------------------------- duplicates, statistics, split, writing


def examples_of(*pairs):
    return [ChatExample(qa(q, a), line) for line, (q, a) in enumerate(pairs, start=1)]


def test_duplicates_ignore_case_and_whitespace():
    examples = examples_of(("Hi?", "Hello."), ("Bye?", "Bye."), ("  hi? ", "hello. "), ("Hi?", "Hello, you."))
    assert find_duplicates(examples) == [(3, 1)]


def test_stats_measure_what_training_sees(tokenizer):
    examples = load_chat_jsonl(TRAIN)
    lengths = [len(tokenize_for_training(tokenizer, list(e.messages), 10_000)[0]) for e in examples]
    stats = dataset_stats(examples, tokenizer, max_seq_length=40)
    assert stats.count == len(examples)
    assert stats.max_tokens == max(lengths)
    assert stats.avg_tokens == pytest.approx(sum(lengths) / len(lengths), abs=0.05)
    assert stats.over_max_length == sum(n > 40 for n in lengths) > 0
    assert stats.duplicates == len(stats.duplicate_lines) == len(find_duplicates(examples))
    assert [s["line"] for s in stats.samples] == [1, 2, 3]
    assert stats.samples[0]["question"] == examples[0].question
    assert json.loads(json.dumps(stats.to_json()))["count"] == len(examples)


def test_stats_of_an_empty_set(tokenizer):
    stats = dataset_stats([], tokenizer)
    assert (stats.count, stats.avg_tokens, stats.max_tokens, stats.over_max_length, stats.samples) == (
        0,
        0,
        0,
        None,
        [],
    )


def test_holdout_split_sizes_and_determinism():
    examples = examples_of(*[(f"q{i}", f"a{i}") for i in range(20)])
    train, held = split_holdout(examples)
    assert (len(train), len(held)) == (18, 2)
    assert sorted(train + held, key=lambda e: e.line) == examples and train == sorted(train, key=lambda e: e.line)
    assert split_holdout(examples) == (train, held)
    assert split_holdout(examples, seed=1) != (train, held)
    assert [len(part) for part in split_holdout(examples, 0.5)] == [10, 10]
    assert split_holdout(examples, 0) == (examples, [])


def test_holdout_split_edges():
    one, two = examples_of(("q", "a")), examples_of(("q", "a"), ("r", "b"))
    assert split_holdout(one) == (one, [])
    assert [len(part) for part in split_holdout(two, 0.01)] == [1, 1]
    for fraction in (-0.1, 0.6):
        with pytest.raises(ValueError, match="hold-out fraction"):
            split_holdout(two, fraction)


def test_holdout_keeps_duplicates_on_one_side():
    examples = examples_of(*[(f"q{i % 6}", "a") for i in range(12)])  # six pairs of duplicates
    for seed in range(5):
        train, held = split_holdout(examples, 0.2, seed)
        assert len(held) == 2 and {e.question for e in held}.isdisjoint(e.question for e in train)


def test_written_chat_jsonl_loads_back(tmp_path):
    examples = load_dataset(FORMATS / "sharegpt.jsonl").examples
    path = write_chat_jsonl(examples, tmp_path / "edited" / "train.jsonl")
    loaded = load_dataset(path)
    assert loaded.ok and loaded.format == "chat"
    assert [e.messages for e in loaded.examples] == [e.messages for e in examples]
    assert [e.line for e in loaded.examples] == list(range(1, len(examples) + 1))
