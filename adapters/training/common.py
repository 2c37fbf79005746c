"""What every training run shares: the LoRA and fit settings, tokenised examples and their batches, the answer loss.

The loop itself is `adapters.training.loop`, for user fine-tunes and the demo model's build alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from adapters.datasets import IGNORE_INDEX, ChatExample, tokenize_for_training

if TYPE_CHECKING:  # transformers stays unimported here: Unsloth patches it and must be imported first
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TokenizedExample = tuple[list[int], list[int]]


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def peft_config(self) -> Any:
        """The peft `LoraConfig` for a causal LM with these settings."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.rank,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            task_type="CAUSAL_LM",
        )


@dataclass(frozen=True)
class FitSettings:
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 8
    max_seq_length: int = 512
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int = 0
    max_seconds: float | None = None  # a safety cap; training stops after the step that crosses it
    context_loss_weight: float = 0.0  # >0 also trains on prompt tokens (pretraining, not fine-tuning)
    eval_every: int = 20  # steps between evaluations on the held-out examples (0: only at the end)
    # steps between checkpoints a cancelled or failed job resumes from (0: only when cancelled); jobs only
    checkpoint_every: int = 50


def total_steps(examples: int, fit: FitSettings) -> int:
    """The optimizer steps of a run on `examples` training examples: `max_steps`, else whole epochs' batches."""
    if fit.max_steps:
        return fit.max_steps
    return max(1, math.ceil(math.ceil(examples / fit.batch_size) * fit.epochs))


def _collate(examples: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def use_bf16(device: torch.device) -> bool:
    """Whether training on `device` runs under bf16 autocast."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # CPUs without bf16 instructions gain nothing from autocast; it stays off there.
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and _cpu_has_bf16()


@cache
def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def answer_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor], context_weight: float = 0.0) -> torch.Tensor:
    """Next-token loss on labelled positions, plus `context_weight` × the loss on the prompt.

    The output projection runs only on the positions that count: with long RAG prompts and
    short answers, projecting every position onto the vocabulary would be about half the compute.
    """
    hidden = model.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    head = model.get_output_embeddings()
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    loss = torch.nn.functional.cross_entropy(head(hidden[:, :-1][keep]).float(), targets[keep])
    prompt = (batch["attention_mask"][:, 1:] == 1) & ~keep
    if context_weight > 0 and bool(prompt.any()):
        tokens = batch["input_ids"][:, 1:][prompt]
        loss = loss + context_weight * torch.nn.functional.cross_entropy(head(hidden[:, :-1][prompt]).float(), tokens)
    return loss


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample], max_seq_length: int
) -> list[TokenizedExample]:
    return [tokenize_for_training(tokenizer, list(e.messages), max_seq_length) for e in examples]
