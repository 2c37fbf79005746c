"""Training on the CPU backend (transformers + peft): a plain loop, LoRA by default.

The loop batches examples of similar length (less padding), uses bf16 autocast where the CPU
supports it, and writes a standard PEFT adapter directory that `PeftModel.from_pretrained` loads.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
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
    eval_every: int = 20  # steps between evaluations on the held-out examples (0: only at the end); backends only


@dataclass
class StepLog:
    step: int
    total_steps: int
    loss: float
    learning_rate: float
    tokens_per_s: float
    elapsed_s: float


@dataclass
class FitReport:
    steps: int
    train_loss: float
    tokens: int
    seconds: float
    history: list[StepLog] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _batches(examples: Sequence[TokenizedExample], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of indices, each holding examples of similar length."""
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i][0]), rng.random()))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


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


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast("cuda" if device.type == "cuda" else "cpu", dtype=torch.bfloat16, enabled=use_bf16(device))


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


def fit(
    model: PreTrainedModel,
    examples: Sequence[TokenizedExample],
    settings: FitSettings,
    pad_id: int,
    on_step: Callable[[StepLog], None] | None = None,
) -> FitReport:
    """Train `model` in place on tokenised examples (only parameters with requires_grad)."""
    if not examples:
        raise ValueError("no training examples")
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    steps_per_epoch = math.ceil(len(examples) / settings.batch_size)
    total = settings.max_steps or max(1, math.ceil(steps_per_epoch * settings.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    warmup = max(1, int(total * settings.warmup_ratio))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    device = model.device
    report = FitReport(steps=0, train_loss=float("nan"), tokens=0, seconds=0.0)
    started = time.perf_counter()
    queue: list[list[int]] = []
    smoothed: float | None = None
    for step in range(total):
        if not queue:
            queue = _batches(examples, settings.batch_size, rng)
        batch = _collate([examples[i] for i in queue.pop()], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        with _autocast(device):
            loss = answer_loss(model, batch, settings.context_loss_weight)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
        report.tokens += int(batch["attention_mask"].sum())
        report.steps = step + 1
        report.seconds = time.perf_counter() - started
        log = StepLog(step + 1, total, value, scheduler.get_last_lr()[0], report.tokens_per_s, report.seconds)
        report.history.append(log)
        if on_step:
            on_step(log)
        if settings.max_seconds is not None and report.seconds > settings.max_seconds:
            break
    report.train_loss = smoothed if smoothed is not None else float("nan")
    model.eval()
    return report


def tokenize_examples(
    tokenizer: PreTrainedTokenizerBase, examples: Sequence[ChatExample], max_seq_length: int
) -> list[TokenizedExample]:
    return [tokenize_for_training(tokenizer, list(e.messages), max_seq_length) for e in examples]


def train_lora(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[ChatExample],
    output_dir: str | Path,
    lora: LoraSettings = LoraSettings(),
    settings: FitSettings = FitSettings(),
    on_step: Callable[[StepLog], None] | None = None,
) -> FitReport:
    """Wrap `model` with a fresh LoRA adapter, train it, and save the adapter directory."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, lora.peft_config())
    tokenized = tokenize_examples(tokenizer, examples, settings.max_seq_length)
    report = fit(peft_model, tokenized, settings, tokenizer.pad_token_id, on_step)
    peft_model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    (Path(output_dir) / "training_args.json").write_text(
        json.dumps({"lora": asdict(lora), "fit": asdict(settings)}, indent=2)
    )
    return report
