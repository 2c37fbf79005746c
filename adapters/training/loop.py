"""The training loop both backends share: transformers' `Trainer`, with the loss and the figures the product needs.

Batches group examples of similar length and are padded per batch; the loss is computed by the backend's
`loss_fn` (the answer-only projection for transformers + peft, the model's own fused loss for Unsloth). A callback
turns every optimizer step into a `step` event, evaluates the held-out examples, and stops after the current step
when asked to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from adapters.datasets import IGNORE_INDEX
from adapters.jobs.events import Checkpoint, Eval, JobEvent, Step
from adapters.training.common import FitSettings, TokenizedExample, _collate, total_steps

LossFn = Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]


class _Examples(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[TokenizedExample]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> TokenizedExample:
        return self.items[index]


class AnswerTrainer(Trainer):
    """`Trainer` with a pluggable loss; it keeps the last step's loss, learning rate and real token count."""

    def __init__(self, *args: Any, loss_fn: LossFn, lengths: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.lengths = lengths
        # Left as tensors until the step ends: reading them at once would sync a GPU in the middle of the step.
        self.step_loss: torch.Tensor | None = None
        self.step_tokens: torch.Tensor | None = None
        self.step_lr = 0.0
        self.remove_callback(PrinterCallback)  # it prints Trainer's logs to stdout

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        # Trainer reads lengths only from a `datasets.Dataset` column; ours are known already.
        return LengthGroupedSampler(self.args.train_batch_size, lengths=self.lengths)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        with self.accelerator.autocast():
            loss = self.loss_fn(model, inputs)
        self.step_loss = loss.detach()
        self.step_tokens = inputs["attention_mask"].sum()
        self.step_lr = self._get_learning_rate()
        return (loss, {}) if return_outputs else loss


def training_arguments(
    fit: FitSettings, steps: int, output_dir: Path, device: torch.device, bf16: bool, checkpoints: bool = False
):
    """`checkpoints`: save the adapter with its optimizer, scheduler and random state into `output_dir` every
    `fit.checkpoint_every` steps (only the last one is kept), so that a job can resume."""
    every = fit.checkpoint_every if checkpoints and fit.checkpoint_every else 0
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=fit.batch_size,
        gradient_accumulation_steps=1,
        max_steps=steps,
        learning_rate=fit.learning_rate,
        weight_decay=fit.weight_decay,
        warmup_steps=fit.warmup_ratio,  # below 1: a share of the steps
        # cosine down to 10% of the peak rate
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        max_grad_norm=1.0,
        seed=fit.seed,
        data_seed=fit.seed,
        bf16=bf16,
        use_cpu=device.type == "cpu",
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,  # items are (ids, labels) pairs, collated by us
        dataloader_num_workers=0,
        dataloader_pin_memory=device.type == "cuda",
        save_strategy="steps" if every else "no",
        save_steps=every or 500,
        save_total_limit=1,
        eval_strategy="no",
        logging_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )


def build_trainer(
    model: Any,
    examples: Sequence[TokenizedExample],
    fit: FitSettings,
    pad_id: int,
    loss_fn: LossFn,
    output_dir: Path,
    bf16: bool,
    checkpoints: bool = False,
) -> AnswerTrainer:
    """`output_dir`: where checkpoints go when `checkpoints` is on (the adapter itself is saved by the caller)."""
    steps = total_steps(len(examples), fit)
    return AnswerTrainer(
        model=model,
        args=training_arguments(fit, steps, output_dir, model.device, bf16, checkpoints),
        train_dataset=_Examples(examples),
        data_collator=lambda items: _collate(items, pad_id),
        loss_fn=loss_fn,
        lengths=[len(ids) for ids, _ in examples],
    )


def eval_batches(examples: Sequence[TokenizedExample], batch_size: int, pad_id: int) -> list[dict[str, torch.Tensor]]:
    ordered = sorted(examples, key=lambda example: len(example[0]))  # little padding
    return [_collate(ordered[i : i + batch_size], pad_id) for i in range(0, len(ordered), batch_size)]


@torch.no_grad()
def evaluate(trainer: AnswerTrainer, batches: list[dict[str, torch.Tensor]]) -> float | None:
    """Mean loss per answer token over `batches`; None when they hold no answer token."""
    model = trainer.model
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        batch = {k: v.to(model.device) for k, v in batch.items()}
        tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        with trainer.accelerator.autocast():
            total += float(trainer.loss_fn(model, batch)) * tokens
        count += tokens
    model.train(was_training)
    return total / count if count else None


@dataclass
class LoopReport:
    status: str  # "completed" or "cancelled"
    steps: int
    total_steps: int
    train_loss: float
    eval_loss: float | None
    tokens: int
    seconds: float  # training only: from the first step's start to the last step's end, evaluations left out


class EventCallback(TrainerCallback):
    """Step and eval events, held-out evaluation every `fit.eval_every` steps, and stopping when asked."""

    def __init__(
        self,
        trainer: AnswerTrainer,
        fit: FitSettings,
        eval_set: list[dict[str, torch.Tensor]],
        on_event: Callable[[JobEvent], None],
        should_stop: Callable[[], bool],
    ) -> None:
        self.trainer, self.fit, self.eval_set = trainer, fit, eval_set
        self.on_event, self.should_stop = on_event, should_stop
        self.report = LoopReport("completed", 0, trainer.args.max_steps, float("nan"), None, 0, 0.0)
        self.started = 0.0
        self.eval_seconds = 0.0
        self.last_eval_step = -1
        self.smoothed: float | None = None
        self.first_step = 0  # a resumed run starts past 0: rates and the ETA count only this run's steps

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.perf_counter()
        self.first_step = state.global_step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer, report = self.trainer, self.report
        loss = float(trainer.step_loss) if trainer.step_loss is not None else float("nan")
        report.tokens += int(trainer.step_tokens) if trainer.step_tokens is not None else 0
        report.steps = step = state.global_step
        elapsed = time.perf_counter() - self.started
        report.seconds = elapsed - self.eval_seconds
        self.smoothed = loss if self.smoothed is None else 0.9 * self.smoothed + 0.1 * loss
        self.on_event(
            Step(
                step=step,
                total_steps=report.total_steps,
                loss=loss,
                learning_rate=trainer.step_lr,
                tokens_per_s=report.tokens / report.seconds if report.seconds > 0 else 0.0,
                elapsed_s=elapsed,
                eta_s=elapsed / max(step - self.first_step, 1) * (report.total_steps - step),
            )
        )
        if self.fit.eval_every and step % self.fit.eval_every == 0 and step < report.total_steps:
            self.run_eval(step)
        if step < report.total_steps and self.should_stop():
            report.status = "cancelled"
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"  # a checkpoint where it stopped, to resume from
        elif self.fit.max_seconds is not None and elapsed > self.fit.max_seconds:
            control.should_training_stop = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.on_event(Checkpoint(step=state.global_step, path=str(folder)))

    def run_eval(self, step: int) -> None:
        if not self.eval_set or step == self.last_eval_step:
            return
        started = time.perf_counter()
        self.report.eval_loss = evaluate(self.trainer, self.eval_set)
        self.eval_seconds += time.perf_counter() - started
        self.last_eval_step = step
        if self.report.eval_loss is not None:
            self.on_event(Eval(step=step, eval_loss=self.report.eval_loss))


def run_loop(
    trainer: AnswerTrainer,
    fit: FitSettings,
    eval_examples: Sequence[TokenizedExample],
    pad_id: int,
    on_event: Callable[[JobEvent], None],
    should_stop: Callable[[], bool],
    resume_from: Path | None = None,
) -> LoopReport:
    """Train to the end (or until `should_stop()`), then evaluate once more unless cancelled. `resume_from`: a
    checkpoint folder; training goes on from its step with its optimizer, scheduler and random state."""
    batches = eval_batches(eval_examples, fit.batch_size, pad_id)
    events = EventCallback(trainer, fit, batches, on_event, should_stop)
    trainer.add_callback(events)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    report = events.report
    # A cancel should end quickly: the adapter keeps the last evaluation's loss.
    if report.status == "completed" and report.steps:
        events.run_eval(report.steps)
    report.train_loss = events.smoothed if events.smoothed is not None else float("nan")
    trainer.model.eval()
    return report
