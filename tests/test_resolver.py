"""Every model load goes through one resolver: folder or hub id → cache → hub → demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.resolver import resolve_model


def _demo() -> tuple[Path, str]:
    return Path("/demo"), "demo-model"


def test_a_local_folder_is_used_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    resolved = resolve_model(str(tmp_path), _demo, log=lambda m: None)
    assert resolved.source == "local"
    assert resolved.path == tmp_path.resolve()


def test_a_folder_without_a_model_is_named_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"is a folder without a model in it \(no config.json\)$"):
        resolve_model(str(tmp_path), _demo, log=lambda m: None)


def test_offline_and_not_cached_falls_back_to_the_demo_model_and_says_why(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    messages: list[str] = []
    resolved = resolve_model("some-org/not-cached-model", _demo, log=messages.append)
    assert resolved.source == "demo"
    assert resolved.name == "demo-model"
    assert "not in the local cache" in resolved.note and "HF_HUB_OFFLINE" in resolved.note
    assert any("demo model" in m for m in messages)


def test_demo_asked_for_explicitly():
    resolved = resolve_model("demo", _demo, log=lambda m: None)
    assert resolved.source == "demo"
