"""Question sets for evaluation: JSONL and CSV, and a message naming file, line and field for every mistake."""

import json

import pytest

from playground.questions import load_questions


def test_a_csv_question_set_loads_with_quoted_cells_and_optional_columns(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(
        "Question,Reference,fact,source\n"
        '"How long, in days, is the return window?","Returns are accepted for 45 days.",45 days,returns.md\n'
        "\n"  # blank lines are skipped
        "Who founded the shop?,Ada Lovelace founded it.,,\n",
        encoding="utf-8-sig",  # a spreadsheet's byte-order mark
    )
    found = load_questions(path)
    assert found.name == "mine.csv" and len(found.sha256) == 64
    first, second = found.items
    assert first.question == "How long, in days, is the return window?" and first.fact == "45 days"
    assert first.source == "returns.md" and first.line == 2
    assert second.fact is None and second.source is None and second.line == 4


def test_jsonl_reads_answer_as_the_reference_but_prefers_reference(tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [{"question": "q1", "answer": "old name"}, {"question": "q2", "reference": "r", "answer": "ignored"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [item.reference for item in load_questions(path).items] == ["old name", "r"]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("q.csv", "question,fact\nq,f\n", r"^q\.csv, line 1: no 'reference' column \(found: question, fact\)$"),
        ("q.csv", "question,reference\nq,r\nq2,r2,extra\n", r"^q\.csv, line 3: 3 cells, header has 2$"),
        ("q.csv", "question,reference\nq,r\n  ,r2\n", r"^q\.csv, line 3: missing or empty field 'question'$"),
        ("q.csv", "", r"^q\.csv: no header row"),
        ("q.jsonl", '{"question": "q", "reference": 5}\n', r"^q\.jsonl, line 1: field 'reference' must be text"),
        ("q.jsonl", '{"question": "q", "reference": "r", "fact": ["x"]}\n', r"line 1: field 'fact' must be text"),
    ],
    ids=["csv-no-column", "csv-extra-cell", "csv-empty-cell", "csv-empty", "json-number", "json-list"],
)
def test_a_mistake_names_file_line_and_field(tmp_path, name: str, content: str, expected: str):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=expected) as raised:
        load_questions(path)
    assert "\n" not in str(raised.value)
