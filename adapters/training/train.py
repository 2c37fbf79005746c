"""Training a LoRA adapter with a registered backend (`adapters.training.backends`), and the settings presets.

Every backend trains through the same loop (`adapters.training.loop`), reports the same events, and writes a
standard PEFT adapter directory that `PeftModel.from_pretrained` loads. transformers is not imported here at module
level, so a job that picks Unsloth imports it before transformers, as Unsloth asks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from adapters.datasets import ChatExample
from adapters.errors import UserError
from adapters.jobs.events import JobEvent, Phase, Saved
from adapters.training.backends import BACKENDS, BackendChoice
from adapters.training.common import FitSettings, LoraSettings, tokenize_examples, use_bf16

# "quick demo": the small demo model learns the sample set's voice (held-out loss ~8 to ~1.5) in about 20 s on
# 2 CPU cores, model load included; the high learning rate suits that tiny model. "default": common LoRA values.
QUICK_DEMO = (
    LoraSettings(),
    FitSettings(learning_rate=4e-3, max_steps=300, batch_size=8, max_seq_length=256, eval_every=25),
)
DEFAULT = (
    LoraSettings(),
    FitSettings(learning_rate=2e-4, epochs=3.0, batch_size=8, max_seq_length=512, eval_every=50),
)
QUICK_DEMO_NAME = "quick demo"
PRESETS: dict[str, tuple[LoraSettings, FitSettings]] = {QUICK_DEMO_NAME: QUICK_DEMO, "default": DEFAULT}


def preset_settings(
    preset: str, lora: dict[str, Any] | None = None, fit: dict[str, Any] | None = None
) -> tuple[LoraSettings, FitSettings]:
    """A preset's settings with `lora` and `fit` overriding some of them (lists, as JSON gives them, become the
    tuples the settings hold)."""
    lora_defaults, fit_defaults = PRESETS[preset]
    tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in (lora or {}).items()}
    return replace(lora_defaults, **tuples), replace(fit_defaults, **(fit or {}))


def job_settings(
    preset: str,
    lora: dict[str, Any] | None,
    fit: dict[str, Any] | None,
    config: Any,
    backend: str,
    device: str | None,
) -> tuple[LoraSettings, FitSettings, str]:
    """The settings a job trains with: the preset's with the user's overrides, and on a GPU the quick preset
    sized for the device (`adapters.training.memory.sized_for_gpu`), with a note saying so ("" when unchanged).
    `config`: the base model's config (None: not sized)."""
    from adapters.training.memory import sized_for_gpu

    lora_settings, fit_settings = preset_settings(preset, lora, fit)
    if preset != QUICK_DEMO_NAME or config is None:
        return lora_settings, fit_settings, ""
    try:
        sized = sized_for_gpu(config, lora_settings, fit_settings, backend, device, fit or {})
    except (AttributeError, TypeError, ValueError):  # a config that does not name its sizes as Llama's does
        return lora_settings, fit_settings, ""
    return lora_settings, sized.fit, sized.note


@dataclass
class TrainSpec:
    base_model: str  # folder or hub id
    train: list[ChatExample]
    eval: list[ChatExample]
    lora: LoraSettings
    fit: FitSettings
    output_dir: Path
    device: str | None = None  # None: CUDA when available, else the CPU
    checkpoint_dir: Path | None = None  # where checkpoints go (a job's folder); None: no checkpoints
    resume_from: Path | None = None  # a checkpoint of an earlier run of the same job to go on from


@dataclass(frozen=True)
class TrainResult:
    status: Literal["completed", "cancelled"]
    steps: int
    total_steps: int
    train_loss: float  # smoothed over the last steps
    eval_loss: float | None  # None without held-out examples
    tokens_per_s: float  # real (non-padding) tokens per second of training
    seconds: float  # the whole call: load, train, evaluate, save
    output_dir: Path


def train(
    spec: TrainSpec,
    backend: BackendChoice,
    on_event: Callable[[JobEvent], None] = lambda event: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Train a LoRA adapter on `spec.train` and save it to `spec.output_dir`, also when stopped early.

    `should_stop()` is asked after every step; when it says yes, training ends there and the adapter saved so far
    is usable (status "cancelled").
    """
    from adapters.training.loop import build_trainer, run_loop

    if not spec.train:
        raise UserError("no training examples")
    started = time.perf_counter()
    runner = BACKENDS[backend.name]
    on_event(Phase(text=f"loading {spec.base_model} with {runner.label}"))
    model, tokenizer = runner.load(spec)
    if backend.name == "unsloth":
        on_event(Phase(text="Unsloth compiles its kernels on the first step"))
    pad_id = tokenizer.pad_token_id
    examples = tokenize_examples(tokenizer, spec.train, spec.fit.max_seq_length)
    held_out = tokenize_examples(tokenizer, spec.eval, spec.fit.max_seq_length)
    output_dir = Path(spec.output_dir)
    checkpoints = spec.checkpoint_dir is not None
    where = spec.checkpoint_dir or output_dir
    trainer = build_trainer(model, examples, spec.fit, pad_id, runner.loss, where, use_bf16(model.device), checkpoints)
    report = run_loop(trainer, spec.fit, held_out, pad_id, on_event, should_stop, spec.resume_from)
    save_adapter(model, tokenizer, output_dir, spec, backend)
    on_event(Saved(path=str(output_dir)))
    return TrainResult(
        status="cancelled" if report.status == "cancelled" else "completed",
        steps=report.steps,
        total_steps=report.total_steps,
        train_loss=report.train_loss,
        eval_loss=report.eval_loss,
        tokens_per_s=report.tokens / report.seconds if report.seconds > 0 else 0.0,
        seconds=time.perf_counter() - started,
        output_dir=output_dir,
    )


def save_adapter(model: Any, tokenizer: Any, output_dir: Path, spec: TrainSpec, backend: BackendChoice) -> None:
    """The PEFT adapter (adapter_config.json, adapter_model.safetensors), the tokenizer, and the settings used."""
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    settings = {"backend": backend.name, "lora": asdict(spec.lora), "fit": asdict(spec.fit)}
    (output_dir / "training_args.json").write_text(json.dumps(settings, indent=2))
