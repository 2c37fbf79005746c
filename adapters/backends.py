"""Training backends: Unsloth on a CUDA GPU where it is installed, transformers + peft everywhere else.

Both train a LoRA adapter through the same loop (`adapters.trainer_loop`), report the same events, and write a
standard PEFT adapter directory that `PeftModel.from_pretrained` loads. Unsloth is imported only when CUDA is
available (it raises at import without a GPU), and transformers is not imported here at module level, so a job
that picks Unsloth imports it before transformers, as Unsloth asks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from adapters.datasets import ChatExample
from adapters.errors import UserError
from adapters.train import FitSettings, LoraSettings, answer_loss, tokenize_examples, use_bf16

BackendName = Literal["unsloth", "transformers"]
PREFERENCES = ("auto", "transformers", "unsloth")
INSTALL_HINT = "pip install -r requirements-gpu.txt"

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
PRESETS: dict[str, tuple[LoraSettings, FitSettings]] = {"quick demo": QUICK_DEMO, "default": DEFAULT}


class BackendUnavailable(RuntimeError):
    """The backend asked for cannot run on this machine; the message says why."""


@dataclass(frozen=True)
class BackendChoice:
    name: BackendName
    reason: str  # plain words for the page: which backend runs and why


def unsloth_problem(probe: bool = True) -> str | None:
    """Why Unsloth cannot run here, or None when it can. `probe=False` only looks for the package: importing
    unsloth patches transformers for the whole process, which the app serving answers must not undergo."""
    if not torch.cuda.is_available():
        return "no CUDA GPU on this machine"
    if not probe:
        import importlib.util

        return None if importlib.util.find_spec("unsloth") else f"unsloth is not installed ({INSTALL_HINT})"
    try:
        import unsloth  # noqa: F401
    except ModuleNotFoundError as error:
        if error.name == "unsloth":
            return f"unsloth is not installed ({INSTALL_HINT})"
        return f"unsloth could not be imported ({error})"
    except Exception as error:  # it raises many kinds of errors at import (no GPU, version mismatches)
        return f"unsloth could not be imported ({type(error).__name__}: {error})"
    return None


def choose_backend(prefer: str = "auto", probe: bool = True) -> BackendChoice:
    """Unsloth when a CUDA GPU is there and `unsloth` imports; transformers + peft otherwise.

    `prefer="transformers"` always takes the plain path; `prefer="unsloth"` raises BackendUnavailable if it can't run.
    """
    if prefer not in PREFERENCES:
        raise UserError(f"backend is {prefer!r}; expected one of {', '.join(PREFERENCES)}")
    where = "on the GPU" if torch.cuda.is_available() else "on the CPU"
    if prefer == "transformers":
        return BackendChoice("transformers", f"transformers + peft {where}, as asked")
    problem = unsloth_problem(probe)
    if problem is None:
        return BackendChoice("unsloth", "CUDA GPU and unsloth: Unsloth")
    if prefer == "unsloth":
        raise BackendUnavailable(f"the Unsloth backend cannot run: {problem}")
    return BackendChoice("transformers", f"{problem}: transformers + peft {where}")


@dataclass
class TrainSpec:
    base_model: str  # folder or hub id
    train: list[ChatExample]
    eval: list[ChatExample]
    lora: LoraSettings
    fit: FitSettings
    output_dir: Path
    device: str | None = None  # None: CUDA when available, else the CPU


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


def _device(spec: TrainSpec) -> torch.device:
    return torch.device(spec.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _load_transformers(spec: TrainSpec) -> tuple[Any, Any]:
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = _device(spec)
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Half-precision weights on a GPU that computes in bf16; on a CPU autocast does it, the weights stay fp32.
    dtype = torch.bfloat16 if device.type == "cuda" and use_bf16(device) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=dtype).to(device)
    model.config.use_cache = False
    torch.manual_seed(spec.fit.seed)  # the LoRA weights' initialisation
    return get_peft_model(model, spec.lora.peft_config()), tokenizer


def train(
    spec: TrainSpec,
    backend: BackendChoice,
    on_event: Callable[[dict[str, Any]], None] = lambda event: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> TrainResult:
    """Train a LoRA adapter on `spec.train` and save it to `spec.output_dir`, also when stopped early.

    `should_stop()` is asked after every step; when it says yes, training ends there and the adapter saved so far
    is usable (status "cancelled").
    """
    from adapters.trainer_loop import build_trainer, run_loop

    if not spec.train:
        raise UserError("no training examples")
    started = time.perf_counter()
    if backend.name == "unsloth":
        from adapters.unsloth_backend import load_unsloth, model_loss

        model, tokenizer = load_unsloth(spec.base_model, spec.lora, spec.fit)
        loss_fn = model_loss
    else:
        model, tokenizer = _load_transformers(spec)
        loss_fn = answer_loss
    pad_id = tokenizer.pad_token_id
    examples = tokenize_examples(tokenizer, spec.train, spec.fit.max_seq_length)
    held_out = tokenize_examples(tokenizer, spec.eval, spec.fit.max_seq_length)
    output_dir = Path(spec.output_dir)
    trainer = build_trainer(model, examples, spec.fit, pad_id, loss_fn, output_dir, use_bf16(model.device))
    report = run_loop(trainer, spec.fit, held_out, pad_id, on_event, should_stop)
    save_adapter(model, tokenizer, output_dir, spec, backend)
    on_event({"type": "saved", "path": str(output_dir)})
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
