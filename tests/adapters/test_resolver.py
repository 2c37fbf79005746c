"""Every model load goes through one resolver: folder or hub id → cache → hub → demo."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapters.errors import UserError
from adapters.resolver import ModelUnavailable, locate_model, resolve_model


def _demo() -> tuple[Path, str]:
    return Path("/demo"), "demo-model"


def test_a_local_folder_is_used_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    resolved = resolve_model(str(tmp_path), _demo)
    assert resolved.source == "local"
    assert resolved.path == tmp_path.resolve()


def test_a_folder_without_a_model_is_named_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"is a folder without a model in it \(no config.json\)$"):
        resolve_model(str(tmp_path), _demo)


def test_offline_and_not_cached_falls_back_to_the_demo_model_and_says_why(monkeypatch, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with caplog.at_level(logging.INFO, logger="adapters.resolver"):
        resolved = resolve_model("some-org/not-cached-model", _demo)
    messages = [record.getMessage() for record in caplog.records]
    assert resolved.source == "demo"
    assert resolved.name == "demo-model"
    assert "not in the local cache" in resolved.note and "HF_HUB_OFFLINE" in resolved.note
    assert any("demo model" in m for m in messages)


def test_demo_asked_for_explicitly():
    resolved = resolve_model("demo", _demo)
    assert resolved.source == "demo"


def test_every_model_kind_goes_through_one_lookup(tmp_path, monkeypatch):
    """The generator, the embedder and the reranker all ask `locate_model`: a folder without a model is named the
    same way for each, and a hub id nobody has is refused before any loader runs."""
    from adapters import resolver
    from pipelines.embedder import resolve_embedder
    from pipelines.reranker import resolve_reranker

    asked: list[str] = []
    real = resolver.locate_model

    def counted(spec: str, **kwargs: object) -> resolver.ModelLocation:
        asked.append(spec)
        return real(spec, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(resolver, "locate_model", counted)
    monkeypatch.setattr("pipelines.embedder.locate_model", counted)
    monkeypatch.setattr("pipelines.reranker.locate_model", counted)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="a folder without a model in it"):
        resolve_model(str(empty), _demo)
    with pytest.raises(UserError, match="a folder without a model in it"):
        resolve_embedder(str(empty))
    assert not resolve_reranker(str(empty)).available
    assert asked == [str(empty)] * 3


def test_a_hub_id_that_cannot_be_had_is_a_model_unavailable_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as raised:
        locate_model("some-org/not-cached-anything")
    assert raised.value.after_colon == "not in the local cache and the hub is off (HF_HUB_OFFLINE=1)"
    assert isinstance(raised.value, UserError)
