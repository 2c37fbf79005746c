"""Atomic writes: a reader sees the old file or the new one, never half of one, and no temporary file stays."""

from __future__ import annotations

import json

import pytest

from adapters.files import atomic_write_json, atomic_write_text


def test_replaces_the_whole_file(tmp_path):
    path = tmp_path / "deep" / "spec.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"b": 2}, indent=2)
    assert json.loads(path.read_text()) == {"b": 2}
    assert [p.name for p in path.parent.iterdir()] == ["spec.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "final.json"
    atomic_write_text(path, "old")

    with pytest.raises(TypeError):
        atomic_write_text(path, 42)  # type: ignore[arg-type]  # fails mid-write
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["final.json"]
