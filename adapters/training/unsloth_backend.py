"""Unsloth's model loading and LoRA wrapping, for CUDA machines with `unsloth` installed.

Only the Unsloth backend of `adapters.training.backends` imports this module, when a job loads its model after
`choose_backend` found a CUDA GPU and a working `unsloth`: Unsloth raises at import on a machine without one.
"""

from __future__ import annotations

from typing import Any

import torch

from adapters.training.common import FitSettings, LoraSettings


def load_unsloth(base_model: str, lora: LoraSettings, fit: FitSettings) -> tuple[Any, Any]:
    """The base model in 16 bits (dtype picked by Unsloth: bf16 where the GPU has it) with a fresh LoRA adapter."""
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=base_model, max_seq_length=fit.max_seq_length, load_in_4bit=False, dtype=None
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = FastLanguageModel.get_peft_model(
        model,
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,  # 0 lets Unsloth use its fastest LoRA kernels
        target_modules=list(lora.target_modules),
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=fit.seed,
    )
    return model, tokenizer


def model_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Unsloth's own fused cross-entropy, which skips the prompt's -100 labels as the answer-only loss does."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
