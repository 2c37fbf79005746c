"""The Fine-tune tab's service: validation before launch, adapters used in Compare without a reload, delete,
merged export, and a Hub push that never shows the token."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.errors import UserError
from adapters.jobs.manager import run_here
from adapters.registry import AdapterInfo
from adapters.resolver import ResolvedModel
from playground.compare import CompareOptions
from playground.config import SAMPLE_DATA
from playground.finetune import FinetuneService

DATA = SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl"


@pytest.fixture(scope="module")
def finetune(runtime):
    service = FinetuneService(runtime)
    yield service
    service.jobs.close()


@pytest.fixture(scope="module")
def trained(runtime, finetune) -> AdapterInfo:
    base = ResolvedModel(Path(runtime.model.path), runtime.model.base, "demo")
    done = run_here(runtime.settings.home, base, DATA, "service voice", "quick demo", {"max_steps": 3}, 0.1, "auto")
    assert done.state == "completed", done
    info = finetune.registry.get(done.adapter)
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


# ---- the settings form and the backend choice ----------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["quick demo", "default"])
def test_the_settings_form_round_trips_a_preset(preset):
    """What a preset puts in the inputs comes back from a launch as the same LoRA and fit settings."""
    from dataclasses import replace

    from adapters.training.train import PRESETS
    from playground.ui.finetune import setting_overrides, setting_values

    lora, fit = PRESETS[preset]
    lora_overrides, fit_overrides = setting_overrides(setting_values(lora, fit))
    assert replace(lora, **lora_overrides) == lora and replace(fit, **fit_overrides) == fit
    changed = setting_values(lora, fit)
    changed[0], changed[6] = 4, 12  # rank and max steps typed in
    lora_overrides, fit_overrides = setting_overrides(changed)
    assert replace(lora, **lora_overrides).rank == 4 and replace(fit, **fit_overrides).max_steps == 12


def test_every_form_input_is_a_settings_field_named_once():
    from dataclasses import fields

    from adapters.training.common import FitSettings, LoraSettings
    from playground.ui.finetune import SETTING_INPUTS

    assert all(s.field in {f.name for f in fields(s.owner)} for s in SETTING_INPUTS)
    assert len({s.field for s in SETTING_INPUTS}) == len(SETTING_INPUTS)
    assert {s.owner for s in SETTING_INPUTS} == {LoraSettings, FitSettings}
    assert [s.elem_id for s in SETTING_INPUTS if s.elem_id] == ["ft-rank", "ft-steps", "ft-batch"]  # tests use them


def test_a_backend_that_cannot_run_is_refused_at_launch_with_its_reason(finetune, monkeypatch):
    from adapters.errors import UserError

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    queued = len(finetune.jobs.jobs())
    with pytest.raises(UserError, match=r"^the Unsloth backend cannot run here: no CUDA GPU on this machine; choose"):
        finetune.launch(DATA, "x", "quick demo", backend="unsloth")
    with pytest.raises(UserError, match="expected one of auto, unsloth, transformers"):
        finetune.launch(DATA, "x", "quick demo", backend="fast")
    assert len(finetune.jobs.jobs()) == queued
    assert finetune.backend_note("unsloth") == "Unsloth: no CUDA GPU on this machine (a launch with it is refused)"
    assert finetune.backend_note("auto").startswith("auto: transformers + peft on the CPU (Unsloth cannot run")


def test_the_tab_reaches_the_runtime_through_the_service(runtime, finetune, tmp_path):
    assert finetune.base_model_name() == runtime.model.base
    cache = tmp_path / "cache"
    upload = cache / "abc" / "mine.jsonl"
    upload.parent.mkdir(parents=True)
    upload.write_text(DATA.read_text())
    kept = finetune.keep_upload(None, upload, cache)
    assert kept.name == "mine.jsonl" and kept.read_text() == DATA.read_text() and not upload.exists()


def test_a_job_that_will_not_fit_in_memory_is_refused_before_it_is_queued(finetune, monkeypatch):
    before = len(finetune.jobs.jobs())
    note = finetune.memory_note("quick demo")
    assert note.startswith("Memory: about") and "memory free now, so it fits" in note
    monkeypatch.setattr("adapters.training.memory.free_memory_gib", lambda device: (0.001, False))
    assert finetune.memory_note("quick demo").startswith("**Will not fit.**")
    with pytest.raises(UserError, match=r"only 0\.0 GiB of CPU memory is free .*lower the batch size"):
        finetune.launch(DATA, "too big", "quick demo")
    assert len(finetune.jobs.jobs()) == before


def test_the_command_line_refuses_the_same_job_the_page_would(runtime, monkeypatch):
    from adapters.datasets import load_dataset
    from playground.__main__ import _memory_problem

    base = ResolvedModel(Path(runtime.model.path), runtime.model.base, "demo")
    examples = load_dataset(DATA).examples
    assert _memory_problem(base, examples, "quick demo", {}, "auto", "") is None
    monkeypatch.setattr("adapters.training.memory.free_memory_gib", lambda device: (0.001, False))
    assert "only 0.0 GiB of CPU memory is free" in (_memory_problem(base, examples, "quick demo", {}, "auto", "") or "")


def test_resume_says_why_when_there_is_nothing_to_resume(runtime, tmp_path):
    from dataclasses import replace

    fresh = replace(runtime, settings=runtime.settings.with_overrides(home=tmp_path))
    service = FinetuneService(fresh)
    try:
        with pytest.raises(UserError, match="No fine-tune has run yet"):
            service.resume()
        base = ResolvedModel(Path(runtime.model.path), runtime.model.base, "demo")
        done = run_here(tmp_path, base, DATA, "finished", "quick demo", {"max_steps": 2}, 0.1, "auto")
        assert done.state == "completed"
        with pytest.raises(UserError, match="only a cancelled or failed fine-tune can be resumed"):
            service.resume()
    finally:
        service.jobs.close()
