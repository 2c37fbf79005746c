"""Training backends: events, held-out loss, cancel, loadable adapters, the registry and the backend choice, and the
fine-tune bench."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import math
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from adapters.datasets import load_chat_jsonl
from adapters.errors import UserError
from adapters.training import train as backends
from adapters.training.backends import (
    BACKENDS,
    BackendChoice,
    BackendUnavailable,
    TrainingBackend,
    TransformersBackend,
    choose_backend,
    describe,
    preferences,
)
from adapters.training.common import FitSettings, LoraSettings
from adapters.training.train import PRESETS, TrainSpec, train
from playground.__main__ import main, parser
from playground.config import SAMPLE_DATA

STEP_KEYS = {"type", "step", "total_steps", "loss", "learning_rate", "tokens_per_s", "elapsed_s", "eta_s"}
FIT = FitSettings(learning_rate=5e-2, max_steps=6, batch_size=4, max_seq_length=128, eval_every=3)
CPU = BackendChoice("transformers", "test")


@pytest.fixture(scope="module")
def base(runtime) -> str:
    return runtime.engine.model.name_or_path  # the tiny demo model's folder


@pytest.fixture(scope="module")
def data() -> list:
    return load_chat_jsonl(SAMPLE_DATA / "finetune" / "train.jsonl")


class _Events(list):
    """What `train` reports, as the JSON objects the job's log writes."""

    def __call__(self, event: Any) -> None:
        self.append(event.to_json())


def _spec(base: str, data: list, folder: Path, fit: FitSettings = FIT, held_out: int = 8) -> TrainSpec:
    return TrainSpec(base, data[:24], data[24 : 24 + held_out], LoraSettings(), fit, folder)


def _next_token_logits(model: Any, tokenizer: Any, question: str) -> torch.Tensor:
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1]


def test_training_reports_every_step_and_saves_a_loadable_adapter(base, data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    events = _Events()
    result = train(_spec(base, data, tmp_path / "adapter"), CPU, events)

    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 7))
    assert all(set(e) == STEP_KEYS and math.isfinite(e["loss"]) and e["tokens_per_s"] > 0 for e in steps)
    assert steps[-1]["eta_s"] == 0 and steps[0]["total_steps"] == 6
    assert [e["step"] for e in events if e["type"] == "eval"] == [3, 6]
    assert events[-1] == {"type": "saved", "path": str(tmp_path / "adapter")}
    assert result.status == "completed" and result.steps == result.total_steps == 6
    assert math.isfinite(result.train_loss) and result.eval_loss is not None and result.tokens_per_s > 0
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "adapter").iterdir()
    }

    # The tiny test model's greedy answers are one repeated token, which six steps need not change: the saved
    # adapter shows in the logits.
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "adapter"))
    plain = AutoModelForCausalLM.from_pretrained(base)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(tmp_path / "adapter"))
    for example in data[:4]:
        before = _next_token_logits(plain, tokenizer, example.question)
        assert not torch.allclose(_next_token_logits(tuned, tokenizer, example.question), before, atol=1e-4)


def test_should_stop_ends_after_the_current_step_with_a_usable_adapter(base, data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    events = _Events()
    fit = replace(FIT, max_steps=500, eval_every=0)
    stop = lambda: sum(e["type"] == "step" for e in events) >= 2  # noqa: E731
    result = train(_spec(base, data, tmp_path / "adapter", fit, held_out=0), CPU, events, stop)

    assert result.status == "cancelled" and result.steps == 2 and result.total_steps == 500
    assert result.eval_loss is None and [e["type"] for e in events] == ["phase", "step", "step", "saved"]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(tmp_path / "adapter"))


class _FakeUnsloth(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers `import unsloth` with a stand-in module, and records that it was asked."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.imported = 0

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, self) if name == "unsloth" else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        self.imported += 1
        if self.fail:
            raise NotImplementedError("Unsloth cannot find any torch accelerator")
        return types.ModuleType("unsloth")

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@pytest.fixture
def fake_unsloth(monkeypatch: pytest.MonkeyPatch):
    """Installs a fake `unsloth` (importable, failing, or absent) and a CUDA answer; puts everything back after."""
    original = sys.modules.pop("unsloth", None)
    meta_path = list(sys.meta_path)

    def install(cuda: bool, unsloth: str = "imports") -> _FakeUnsloth:
        finder = _FakeUnsloth(fail=unsloth == "fails")
        sys.modules.pop("unsloth", None)
        sys.meta_path[:] = [finder, *meta_path]
        if unsloth == "missing":
            sys.modules["unsloth"] = None  # type: ignore[assignment]  # import raises ModuleNotFoundError
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        return finder

    yield install
    sys.meta_path[:] = meta_path
    sys.modules.pop("unsloth", None)
    if original is not None:
        sys.modules["unsloth"] = original


def test_without_cuda_unsloth_is_never_imported(fake_unsloth):
    finder = fake_unsloth(cuda=False)
    choice = choose_backend()
    assert choice == BackendChoice(
        "transformers", "transformers + peft on the CPU (Unsloth cannot run: no CUDA GPU on this machine)"
    )
    with pytest.raises(BackendUnavailable, match="the Unsloth backend cannot run here: no CUDA GPU") as refused:
        choose_backend("unsloth")
    assert isinstance(refused.value, UserError) and "\n" not in str(refused.value)
    assert choose_backend("transformers") == BackendChoice("transformers", "transformers + peft on the CPU, as asked")
    assert finder.imported == 0 and "unsloth" not in sys.modules
    with pytest.raises(UserError, match="expected one of auto, unsloth, transformers"):
        choose_backend("fast")


def test_with_cuda_the_choice_depends_on_unsloth_importing(fake_unsloth):
    finder = fake_unsloth(cuda=True)
    assert choose_backend() == BackendChoice("unsloth", "Unsloth on the GPU")
    assert finder.imported == 1 and choose_backend("unsloth").name == "unsloth"

    fake_unsloth(cuda=True, unsloth="fails")
    choice = choose_backend()
    assert choice.name == "transformers" and "unsloth could not be imported (NotImplementedError" in choice.reason
    with pytest.raises(BackendUnavailable, match="cannot find any torch accelerator"):
        choose_backend("unsloth")

    fake_unsloth(cuda=True, unsloth="missing")
    assert choose_backend() == BackendChoice(
        "transformers",
        "transformers + peft on the GPU (Unsloth cannot run: unsloth is not installed "
        "(pip install -r requirements-gpu.txt))",
    )


def test_the_unsloth_path_passes_the_settings_through(base, data, tmp_path, monkeypatch):
    """Unsloth's API faked over transformers + peft: the backend's calls, the same events, a PEFT adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    calls: dict[str, dict] = {}

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(**kwargs: Any) -> tuple[Any, Any]:
            calls["from_pretrained"] = kwargs
            return AutoModelForCausalLM.from_pretrained(kwargs["model_name"]), AutoTokenizer.from_pretrained(base)

        @staticmethod
        def get_peft_model(model: Any, **kwargs: Any) -> Any:
            calls["get_peft_model"] = kwargs
            config = LoraConfig(r=kwargs["r"], lora_alpha=kwargs["lora_alpha"], target_modules=kwargs["target_modules"])
            return get_peft_model(model, config)

    module = types.ModuleType("unsloth")
    module.FastLanguageModel = FastLanguageModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "unsloth", module)
    events = _Events()
    fit = replace(FIT, max_steps=2)
    result = train(_spec(base, data, tmp_path / "adapter", fit), BackendChoice("unsloth", "test"), events)
    assert calls["from_pretrained"] == {"model_name": base, "max_seq_length": 128, "load_in_4bit": False, "dtype": None}
    assert calls["get_peft_model"]["r"] == 16 and calls["get_peft_model"]["lora_alpha"] == 32
    assert calls["get_peft_model"]["use_gradient_checkpointing"] == "unsloth"
    assert result.steps == 2 and (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert {e["type"] for e in events} == {"phase", "step", "eval", "saved"}
    phases = [e["text"] for e in events if e["type"] == "phase"]
    assert phases == [f"loading {base} with Unsloth", "Unsloth compiles its kernels on the first step"]


def test_presets_use_rank_16_and_alpha_32():
    assert set(PRESETS) == {"quick demo", "default"}
    for lora, fit in PRESETS.values():
        assert (lora.rank, lora.alpha) == (16, 32) and fit.batch_size > 0
    assert PRESETS["quick demo"] == backends.QUICK_DEMO


def test_bench_finetune_prints_every_figure(base, capsys):
    assert main(["bench", "finetune", "--base", base, "--steps", "2", "--rounds", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "transformers" and report["baseline"]["name"] == "trl.SFTTrainer"
    assert report["tokens_per_s"] > 0 and report["baseline"]["tokens_per_s"] > 0
    assert report["ratio"] == pytest.approx(report["tokens_per_s"] / report["baseline"]["tokens_per_s"], rel=0.01)
    assert report["target_ratio"] == 1.0 and report["meets_target"] == (report["ratio"] >= 1.0)
    assert len(report["round_ratios"]) == report["rounds"] == 2 and report["round_tokens"] > 0
    assert {side: len(values) for side, values in report["round_seconds"].items()} == {
        "transformers": 2,
        "trl.SFTTrainer": 2,
    }
    settings = report["settings"]
    assert settings["steps"] == 2 and settings["examples"] == 2 * settings["batch_size"]
    assert settings["lora"]["rank"] == 16 and settings["base_model"] == base


def test_bench_finetune_gpu_needs_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "finetune", "--gpu", "--json"]) == 2
    assert "needs a CUDA GPU with unsloth installed: no CUDA GPU" in capsys.readouterr().err


def test_the_page_never_imports_unsloth(monkeypatch):
    """The app only looks for the package: importing unsloth would patch transformers under the serving engine."""
    import builtins
    import sys

    from adapters.training.backends import choose_backend

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a, **k: object() if name == "unsloth" else None)
    real_import = builtins.__import__

    def guarded(name, *args, **kwargs):
        assert name != "unsloth", "unsloth was imported"
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)
    monkeypatch.delitem(sys.modules, "unsloth", raising=False)
    assert choose_backend("auto", probe=False).name == "unsloth"


# ---- the registry: one class and its entry, read by the choice, the command line and the page ----------------------


class _Fake(TransformersBackend):
    """transformers + peft under another name, which records its calls; `problem` says whether it can run."""

    name = "fake"
    label = "Fake trainer"

    def __init__(self, problem: str | None = None) -> None:
        self.why_not = problem
        self.calls: list[str] = []

    def problem(self, probe: bool = True) -> str | None:
        return self.why_not

    def load(self, spec: TrainSpec) -> tuple[Any, Any]:
        self.calls.append("load")
        return super().load(spec)

    def loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.calls.append("loss")
        return super().loss(model, batch)


@pytest.fixture
def register():
    """Registers a backend, last or first in the order "auto" tries; the registry is put back after."""
    saved = dict(BACKENDS)

    def add(backend: TrainingBackend, first: bool = False) -> TrainingBackend:
        entries = [*BACKENDS.items()]
        entries = [(backend.name, backend), *entries] if first else [*entries, (backend.name, backend)]
        BACKENDS.clear()
        BACKENDS.update(entries)
        return backend

    yield add
    BACKENDS.clear()
    BACKENDS.update(saved)


def _cli_choices() -> list[str]:
    commands = next(a for a in parser()._actions if a.dest == "command")
    return list(next(a for a in commands.choices["finetune"]._actions if a.dest == "backend").choices)


def test_the_registry_drives_the_cli_and_the_page_choices():
    from playground.finetune import FinetuneService

    assert list(BACKENDS) == ["unsloth", "transformers"]  # the order "auto" tries them in
    assert preferences() == ["auto", *BACKENDS] == _cli_choices()
    assert [value for _, value in FinetuneService.backend_options()] == preferences()
    assert all(isinstance(b, TrainingBackend) and b.name == name and b.label for name, b in BACKENDS.items())


def test_a_registered_backend_is_chosen_trains_and_is_offered_without_other_edits(register, base, data, tmp_path):
    from playground.finetune import FinetuneService

    fake = register(_Fake())
    assert "fake" in _cli_choices() and "fake" in [value for _, value in FinetuneService.backend_options()]
    assert parser().parse_args(["finetune", "--data", "x.jsonl", "--backend", "fake"]).backend == "fake"
    assert choose_backend("fake") == BackendChoice("fake", "Fake trainer on the CPU, as asked")
    assert choose_backend().name == "transformers"  # last in the order: "auto" takes one before it

    result = train(_spec(base, data, tmp_path / "adapter", replace(FIT, max_steps=2)), choose_backend("fake"))
    assert result.steps == 2 and fake.calls[0] == "load" and fake.calls.count("loss") >= 2
    assert json.loads((tmp_path / "adapter" / "training_args.json").read_text())["backend"] == "fake"


def test_auto_takes_the_first_that_can_run_and_says_why_it_skipped_the_others(register, fake_unsloth):
    fake_unsloth(cuda=False)
    register(_Fake("needs a licence key"), first=True)
    choice = choose_backend()
    assert choice == BackendChoice(
        "transformers",
        "transformers + peft on the CPU (Fake trainer cannot run: needs a licence key; "
        "Unsloth cannot run: no CUDA GPU on this machine)",
    )
    assert describe("auto") == f"auto: {choice.reason}"
    with pytest.raises(BackendUnavailable, match="the Fake trainer backend cannot run here: needs a licence key"):
        choose_backend("fake")
    assert describe("fake") == "Fake trainer: needs a licence key (a launch with it is refused)"
    assert describe("unsloth") == "Unsloth: no CUDA GPU on this machine (a launch with it is refused)"
    assert describe("transformers") == "transformers + peft on the CPU"

    BACKENDS["fake"].why_not = None
    assert choose_backend() == BackendChoice("fake", "Fake trainer on the CPU")


def test_no_backend_that_can_run_is_a_clear_refusal(register):
    BACKENDS.clear()  # put back by the fixture
    register(_Fake("broken"))
    with pytest.raises(BackendUnavailable, match="no training backend can run here: Fake trainer cannot run: broken"):
        choose_backend()
