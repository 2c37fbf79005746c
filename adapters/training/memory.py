"""Peak memory of a LoRA fine-tune before it starts, from the base model's config alone, so a job that cannot fit is
refused with the reason instead of failing minutes later with an out-of-memory error.

The estimate is weights + the adapter's trainable state + the activations kept for the backward pass:
- weights: parameters × 2 bytes in bf16 on a GPU (both backends load 16-bit weights there), × 4 on a CPU (fp32);
- the adapter: its parameters × 16 bytes (fp32 weight, gradient and Adam's two moments);
- activations, per token of the batch (batch × sequence length), without gradient checkpointing (transformers + peft
  as this product runs it): per layer 36 bytes per hidden unit (attention, norms and residuals; Korthikanti et al.,
  "Reducing Activation Recomputation in Large Transformer Models", 2022, count 34 with memory-efficient attention)
  and 8 bytes per MLP unit (SwiGLU's gate, up, activation and product in 16 bits), plus 10 bytes per vocabulary entry
  for the logits (16-bit logits, their fp32 upcast for the loss and its gradient). Doubled in fp32 on a CPU;
- Unsloth checkpoints every layer (offloading the checkpoints to the CPU) and computes the loss in chunks: one
  layer's activations at a time, recomputed during the backward pass, or its own workspaces when they are larger.

Checked against one measurement (an H100, a Llama-3.2-1B-shaped model, r16 on all linear layers, batch 8):
transformers + peft peaked at 29.1 GiB (~1024 tokens) and 56.7 GiB (~2048); this estimate gives 29.3 and 56.0.
Unsloth peaked at 4.9 GiB at both lengths, 2.4 GiB above its weights and adapter whatever the length: that is its
workspace here (the one figure taken from the measurement rather than counted), and the estimate gives 4.9 and 4.9.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from adapters.training.common import FitSettings, LoraSettings

GIB = 1024**3
ATTENTION_BYTES = 36  # per hidden unit, layer and token, 16-bit (see the module's docstring)
MLP_BYTES = 8  # per MLP unit, layer and token, 16-bit
LOGIT_BYTES = 10  # per vocabulary entry and token
ADAPTER_STATE_BYTES = 16  # per trainable parameter: fp32 weight, gradient, two Adam moments
UNSLOTH_WORKSPACE_BYTES = 2.4 * 1024**3  # measured: see the module's docstring
# The quick preset on a GPU: sequences this long, and the largest of these batches whose estimate fits.
GPU_QUICK_LENGTH = 1024
GPU_QUICK_BATCHES = (32, 16, 8)
HEADROOM = 0.92  # share of the free memory a job may plan to use: the allocator's fragmentation and the CUDA context


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a causal LM's config (Llama, Qwen, Mistral and most others name them so)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
        hidden = int(get("hidden_size"))
        heads = int(get("num_attention_heads"))
        return cls(
            hidden=hidden,
            intermediate=int(get("intermediate_size") or 4 * hidden),
            layers=int(get("num_hidden_layers")),
            heads=heads,
            kv_heads=int(get("num_key_value_heads") or heads),
            vocab=int(get("vocab_size")),
            tied=bool(get("tie_word_embeddings", False)),
        )

    def module_sizes(self) -> dict[str, tuple[int, int]]:
        """(inputs, outputs) of each linear layer LoRA can target, in one decoder layer."""
        h, kv = self.hidden, self.hidden // self.heads * self.kv_heads
        i = self.intermediate
        return {
            "q_proj": (h, h),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (h, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    @property
    def parameters(self) -> int:
        per_layer = sum(a * b for a, b in self.module_sizes().values()) + 2 * self.hidden  # and two norms
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * per_layer + embeddings + self.hidden


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gib: float
    adapter_gib: float
    activations_gib: float
    backend: str
    device: str

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.adapter_gib + self.activations_gib

    def describe(self) -> str:
        return (
            f"about {_size(self.total_gib)} at peak on the {self.device} ({_size(self.weights_gib)} weights, "
            f"{_size(self.adapter_gib)} adapter and optimizer, {_size(self.activations_gib)} activations; "
            f"{self.backend})"
        )

    def problem(self, free_gib: float) -> str | None:
        """Why it will not fit in `free_gib` (None when it will), with what to change."""
        usable = free_gib * HEADROOM
        if self.total_gib <= usable:
            return None
        advice = "lower the batch size or the maximum sequence length"
        if self.backend == "transformers" and self.device == "GPU":
            advice += ", or train with Unsloth (it keeps one layer's activations at a time)"
        return (
            f"This fine-tune needs {self.describe()}, but only {free_gib:.1f} GiB of {self.device} memory is free "
            f"({usable:.1f} GiB usable): {advice}."
        )


def _size(gib: float) -> str:
    """GiB with one decimal; under 0.1 GiB in MiB, so a small model's figures do not all read 0.0."""
    return f"{gib:.1f} GiB" if gib >= 0.1 else f"{gib * 1024:.1f} MiB"


def estimate(
    shape: ModelShape,
    rank: int,
    target_modules: Sequence[str],
    batch_size: int,
    seq_length: int,
    backend: str,
    gpu: bool,
) -> MemoryEstimate:
    """The peak memory of training `shape` with a rank-`rank` adapter on `target_modules`, `batch_size` sequences of
    `seq_length` tokens, with `backend` ("transformers" or "unsloth") on a GPU or (`gpu=False`) a CPU."""
    weight_bytes = 2 if gpu else 4
    sizes = shape.module_sizes()
    adapter_parameters = shape.layers * sum(rank * sum(sizes[m]) for m in target_modules if m in sizes)
    per_layer_token = (ATTENTION_BYTES * shape.hidden + MLP_BYTES * shape.intermediate) * (1 if gpu else 2)
    tokens = batch_size * seq_length
    if backend == "unsloth":  # checkpointed: one layer's activations at a time; logits in chunks
        activations = max(per_layer_token * tokens, UNSLOTH_WORKSPACE_BYTES)
    else:
        activations = shape.layers * per_layer_token * tokens + LOGIT_BYTES * shape.vocab * tokens
    return MemoryEstimate(
        weights_gib=shape.parameters * weight_bytes / GIB,
        adapter_gib=adapter_parameters * ADAPTER_STATE_BYTES / GIB,
        activations_gib=activations / GIB,
        backend=backend,
        device="GPU" if gpu else "CPU",
    )


def job_estimate(
    config: Any, lora: LoraSettings, fit: FitSettings, backend: str, device: str | None, longest: int | None = None
) -> tuple[MemoryEstimate, float]:
    """A job's peak memory on the device it will train on, and the memory free there now (GiB). Batches are as
    long as the dataset's `longest` example in tokens, at most `fit.max_seq_length` (the bound when not given)."""
    free, gpu = free_memory_gib(device)
    length = min(fit.max_seq_length, longest) if longest else fit.max_seq_length
    shape = ModelShape.from_config(config)
    return estimate(shape, lora.rank, tuple(lora.target_modules), fit.batch_size, length, backend, gpu), free


@dataclass(frozen=True)
class Sized:
    fit: FitSettings
    note: str  # for the job's card: what was chosen and why; "" when nothing changed


def sized_for_gpu(
    config: Any, lora: LoraSettings, fit: FitSettings, backend: str, device: str | None, kept: Mapping[str, Any]
) -> Sized:
    """The quick preset on a GPU: it is sized for the CPU (short sequences, small batches), which leaves a GPU
    mostly idle, so on a GPU its sequences grow to GPU_QUICK_LENGTH tokens and its batch to the largest of
    GPU_QUICK_BATCHES that the estimate fits into the free memory. Settings the user chose (`kept`) stay; on a CPU,
    or when no larger batch fits, nothing changes."""
    free, gpu = free_memory_gib(device)
    if not gpu or {"batch_size", "max_seq_length"} <= set(kept):
        return Sized(fit, "")
    shape = ModelShape.from_config(config)
    length = fit.max_seq_length if "max_seq_length" in kept else max(fit.max_seq_length, GPU_QUICK_LENGTH)
    batches = (fit.batch_size,) if "batch_size" in kept else GPU_QUICK_BATCHES
    for batch in batches:
        found = estimate(shape, lora.rank, tuple(lora.target_modules), batch, length, backend, gpu=True)
        if batch >= fit.batch_size and found.problem(free) is None:
            sized = replace(fit, batch_size=batch, max_seq_length=length)
            note = (
                f"the quick preset sized for this GPU: batches of {batch}, sequences up to {length} tokens "
                f"({found.total_gib:.1f} GiB of {free:.1f} GiB free)"
            )
            return Sized(sized, note if sized != fit else "")
    return Sized(fit, "")


def free_memory_gib(device: str | None) -> tuple[float, bool]:
    """Free memory where the job will train, in GiB, and whether that is a GPU: CUDA's free memory on the GPU,
    the available RAM on a CPU."""
    import torch

    wanted = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if wanted.startswith("cuda") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(wanted))
        return free / GIB, True
    import psutil

    return psutil.virtual_memory().available / GIB, False
