"""The Fine-tune tab's service: validation before launch, adapters used in Compare without a reload, delete,
merged export, and a Hub push that never shows the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.registry import AdapterInfo
from adapters.resolver import ResolvedModel
from playground.compare import CompareOptions
from playground.config import SAMPLE_DATA
from playground.finetune import FinetuneService
from playground.jobs import run_here

DATA = SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl"


@pytest.fixture(scope="module")
def finetune(runtime):
    service = FinetuneService(runtime)
    yield service
    service.jobs.close()


@pytest.fixture(scope="module")
def trained(runtime, finetune) -> AdapterInfo:
    base = ResolvedModel(Path(runtime.model.path), runtime.model.base, "demo")
    done = run_here(
        runtime.settings.home, base, DATA, "service voice", "quick demo", {"max_steps": 3}, 0.1, "auto", print
    )
    assert done["state"] == "completed", done
    info = finetune.registry.get(done["adapter"])
    assert info is not None
    return info


def test_validation_and_launch_refusals(finetune, tmp_path):
    check = finetune.validate(DATA)
    assert check.ok and check.stats["count"] == 12 and check.stats["format"] == "sharegpt"
    bad = tmp_path / "bad.csv"
    bad.write_text("question,reply\nHi?,Hello.\n")
    verdict = finetune.validate(bad)
    assert not verdict.ok and any("answer" in row[2] for row in verdict.issue_rows())
    with pytest.raises(ValueError, match="Fix the dataset first"):
        finetune.launch(bad, "x", "quick demo")
    with pytest.raises(ValueError, match="learning rate"):
        finetune.launch(DATA, "x", "quick demo", fit={"learning_rate": -1})
    with pytest.raises(ValueError, match="unknown preset"):
        finetune.launch(DATA, "x", "turbo")


def test_a_new_adapter_answers_in_compare_without_reloading_the_base(runtime, finetune, trained, service):
    base_model = runtime.engine.model.get_base_model() if hasattr(runtime.engine.model, "get_base_model") else None
    assert trained.name in finetune.adapter_choices()
    compare = type(service)(runtime, attach=finetune.ensure_loaded)
    result = compare.compare(
        "Do you sell tents?", CompareOptions(arms=("rag", "finetuned"), max_new_tokens=6, adapter=trained.name)
    )
    assert result.model.adapter == trained.name and result.answers["finetuned"]["text"]
    assert trained.name in runtime.engine.adapters
    if base_model is not None:  # the same base weights, not a second copy
        assert runtime.engine.model.get_base_model() is base_model
    with pytest.raises(ValueError, match="No adapter named"):
        compare.compare("Hi?", CompareOptions(arms=("rag", "finetuned"), max_new_tokens=4, adapter="nope"))


def test_export_merged(finetune, trained):
    from transformers import AutoModelForCausalLM

    folder = finetune.export_merged(trained.name)
    assert (folder / "config.json").exists() and not (folder / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(folder)


def test_push_to_hub_never_shows_the_token(finetune, trained, monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, exist_ok):
            calls["repo"] = repo_id

        def upload_folder(self, folder_path, repo_id):
            raise RuntimeError(f"401 Unauthorized for token hf_secret123 on {repo_id}")

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    with pytest.raises(ValueError) as caught:
        finetune.push_to_hub(trained.name, "me/voice", "hf_secret123")
    assert "hf_secret123" not in str(caught.value) and "***" in str(caught.value)
    assert calls == {"token": "hf_secret123", "repo": "me/voice"}
    with pytest.raises(ValueError, match="owner/name"):
        finetune.push_to_hub(trained.name, "voice", "hf_secret123")


def test_delete(runtime, finetune, trained):
    with pytest.raises(ValueError, match="cannot be deleted"):
        finetune.delete(runtime.model.adapter)
    finetune.ensure_loaded(trained.name)
    finetune.delete(trained.name)
    assert trained.name not in runtime.engine.adapters and not Path(trained.path).exists()
    assert trained.name not in finetune.adapter_choices()
