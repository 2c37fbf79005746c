"""Training backends, registered by name: when each can run, how it loads a model with a fresh LoRA adapter, its loss.

`BACKENDS` holds them in the order "auto" tries them. Adding a backend is one class here and its entry in
`BACKENDS`: the command line's choices, the page's selector and the job's check all read the registry. Nothing
heavy is imported at module level: the command line builds its parser from this module, and a job that uses
Unsloth must import it before transformers.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.errors import UserError

if TYPE_CHECKING:
    import torch

    from adapters.training.train import TrainSpec

INSTALL_HINT = "pip install -r requirements-gpu.txt"
AUTO = "auto"


class BackendUnavailable(UserError):
    """The backend asked for cannot run on this machine; the message says why."""


@dataclass(frozen=True)
class BackendChoice:
    name: str  # a key of BACKENDS
    reason: str  # plain words for the page: which backend runs and why


class TrainingBackend(ABC):
    """One way to train a LoRA adapter; every backend runs through `adapters.training.loop` and saves a PEFT folder."""

    name: ClassVar[str]  # its key in BACKENDS, the value the CLI and the page use
    label: ClassVar[str]  # words for the page

    def problem(self, probe: bool = True) -> str | None:
        """Why it cannot run here, or None when it can. `probe=False` must stay cheap and import nothing that
        changes the process (the serving app asks too)."""
        return None

    def where(self) -> str:
        import torch

        return "on the GPU" if torch.cuda.is_available() else "on the CPU"

    @abstractmethod
    def load(self, spec: TrainSpec) -> tuple[Any, Any]:
        """The base model of `spec` wrapped with a fresh LoRA adapter of `spec.lora`, and its tokenizer."""

    @abstractmethod
    def loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch (labels are -100 where nothing is learned)."""


class TransformersBackend(TrainingBackend):
    name = "transformers"
    label = "transformers + peft"

    def load(self, spec: TrainSpec) -> tuple[Any, Any]:
        import torch
        from peft import get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from adapters.training.common import use_bf16

        device = torch.device(spec.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # Half-precision weights on a GPU that computes in bf16; on a CPU autocast does it, the weights stay fp32.
        dtype = torch.bfloat16 if device.type == "cuda" and use_bf16(device) else torch.float32
        model = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=dtype).to(device)
        model.config.use_cache = False
        torch.manual_seed(spec.fit.seed)  # the LoRA weights' initialisation
        return get_peft_model(model, spec.lora.peft_config()), tokenizer

    def loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from adapters.training.common import answer_loss

        return answer_loss(model, batch)


class UnslothBackend(TrainingBackend):
    """Unsloth's own loading and kernels (`adapters.training.unsloth_backend`), on a CUDA GPU with unsloth."""

    name = "unsloth"
    label = "Unsloth"

    def problem(self, probe: bool = True) -> str | None:
        """Unsloth is imported only with CUDA there (it raises at import without a GPU). `probe=False` only looks
        for the package: importing unsloth patches transformers for the whole process, which the app serving
        answers must not undergo."""
        import torch

        if not torch.cuda.is_available():
            return "no CUDA GPU on this machine"
        if not probe:
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

    def load(self, spec: TrainSpec) -> tuple[Any, Any]:
        from adapters.training.unsloth_backend import load_unsloth

        return load_unsloth(spec.base_model, spec.lora, spec.fit)

    def loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from adapters.training.unsloth_backend import model_loss

        return model_loss(model, batch)


BACKENDS: dict[str, TrainingBackend] = {backend.name: backend for backend in (UnslothBackend(), TransformersBackend())}


def preferences() -> list[str]:
    """What a user may ask for: "auto" (the first backend that can run) or a registered backend's name."""
    return [AUTO, *BACKENDS]


def choose_backend(prefer: str = AUTO, probe: bool = True) -> BackendChoice:
    """The backend a job trains with: the one asked for, or with "auto" the first in `BACKENDS` that can run here.

    A named backend that cannot run raises BackendUnavailable with its reason.
    """
    if prefer != AUTO and prefer not in BACKENDS:
        raise UserError(f"backend is {prefer!r}; expected one of {', '.join(preferences())}")
    if prefer != AUTO:
        backend = BACKENDS[prefer]
        problem = backend.problem(probe)
        if problem is not None:
            raise BackendUnavailable(
                f"the {backend.label} backend cannot run here: {problem}; choose auto to train with one that can"
            )
        return BackendChoice(backend.name, f"{backend.label} {backend.where()}, as asked")
    skipped = []
    for backend in BACKENDS.values():
        problem = backend.problem(probe)
        if problem is None:
            ran = f"{backend.label} {backend.where()}"
            return BackendChoice(backend.name, f"{ran} ({'; '.join(skipped)})" if skipped else ran)
        skipped.append(f"{backend.label} cannot run: {problem}")
    raise BackendUnavailable(f"no training backend can run here: {'; '.join(skipped)}")


def unsloth_may_run(prefer: str) -> bool:
    """Whether a job asking for `prefer` may train with Unsloth (a CUDA GPU, the package installed), so that
    choosing its backend imports Unsloth: it patches transformers and compiles kernels, about a minute."""
    return prefer in (AUTO, UnslothBackend.name) and BACKENDS[UnslothBackend.name].problem(probe=False) is None


def describe(prefer: str, probe: bool = False) -> str:
    """One line for the page about a choice: what "auto" picks and why, or whether a named backend can run."""
    if prefer == AUTO:
        return f"auto: {choose_backend(AUTO, probe).reason}"
    backend = BACKENDS.get(prefer)
    if backend is None:
        raise UserError(f"backend is {prefer!r}; expected one of {', '.join(preferences())}")
    problem = backend.problem(probe)
    if problem is not None:
        return f"{backend.label}: {problem} (a launch with it is refused)"
    return f"{backend.label} {backend.where()}"
