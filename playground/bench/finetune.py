"""Fine-tuning throughput: our training backend against a baseline on the same model, data and settings, in one run.

`python -m playground bench finetune [--steps 40] [--rounds 5] --json`: the transformers + peft backend against
plain TRL `SFTTrainer` (SFTConfig defaults on a `messages` dataset, with the same LoRA config, steps, batch size,
max length, learning rate and seed), on the CPU, with the demo base model and the sample fine-tuning set.
`python -m playground bench finetune --gpu --json`: Unsloth against transformers + peft on a CUDA GPU; each side
runs in its own process, since importing Unsloth patches transformers for the whole process.

Each round trains both sides, taking turns in alternating order, for exactly one pass over the same examples, so
both do the same work: a side's tokens/s is the real (non-padding) tokens of those examples, as our tokenizer counts
them, over its median round's seconds from the start of training to the end of the last step (model loading, set-up
and saving left out). Both sides first train a couple of untimed steps to warm up.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from adapters.datasets import ChatExample, load_chat_jsonl
from adapters.errors import UserError
from adapters.jobs.events import JobEvent, Step
from adapters.training.backends import BACKENDS, BackendChoice, choose_backend
from adapters.training.common import FitSettings, LoraSettings, tokenize_examples, use_bf16
from adapters.training.train import QUICK_DEMO, TrainSpec, train
from playground.config import PROJECT_ROOT, SAMPLE_DATA, Settings

TARGET_RATIO = 1.0
GPU_TARGET_RATIO = 1.8
DEFAULT_STEPS = 40  # per side and round; the CPU bench takes under a minute on an idle machine
GPU_DEFAULT_STEPS = 60
DEFAULT_ROUNDS = 5
WARM_UP_STEPS = 2
DATA = SAMPLE_DATA / "finetune" / "train.jsonl"

Runner = Callable[[list[ChatExample], FitSettings, Path], float]  # trains; returns the seconds of its steps


class BenchUnavailable(RuntimeError):
    """The bench cannot run on this machine; the message says why."""


@dataclass(frozen=True)
class BenchSettings:
    base_model: str
    lora: LoraSettings
    fit: FitSettings
    device: str


def bench_examples(count: int, seed: int) -> list[ChatExample]:
    """`count` examples of the sample set, shuffled with `seed` (cycled if the set is smaller)."""
    pool = load_chat_jsonl(DATA)
    random.Random(seed).shuffle(pool)
    return [pool[i % len(pool)] for i in range(count)]


def real_tokens(base_model: str, examples: list[ChatExample], max_seq_length: int) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    return sum(len(ids) for ids, _ in tokenize_examples(tokenizer, examples, max_seq_length))


def ours(settings: BenchSettings, backend: BackendChoice) -> Runner:
    """The product's `train` on `backend`; its step events carry the seconds since training started."""

    def run(examples: list[ChatExample], fit: FitSettings, folder: Path) -> float:
        elapsed: list[float] = []

        def on_event(event: JobEvent) -> None:
            if isinstance(event, Step) and event.elapsed_s is not None:
                elapsed.append(event.elapsed_s)

        spec = TrainSpec(settings.base_model, examples, [], settings.lora, fit, folder, settings.device)
        train(spec, backend, on_event)
        return elapsed[-1]

    return run


def sft_trainer(settings: BenchSettings) -> Runner:
    """Plain TRL `SFTTrainer` on a `messages` dataset, as its documentation shows, with our settings."""

    def run(examples: list[ChatExample], fit: FitSettings, folder: Path) -> float:
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from transformers.trainer_callback import PrinterCallback
        from trl import SFTConfig, SFTTrainer

        class Clock(TrainerCallback):
            started = ended = 0.0

            def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
                self.started = time.perf_counter()

            def on_step_end(self, *args: Any, **kwargs: Any) -> None:
                self.ended = time.perf_counter()

        device = torch.device(settings.device)
        lora = settings.lora
        config = SFTConfig(
            output_dir=str(folder),
            per_device_train_batch_size=fit.batch_size,
            max_steps=fit.max_steps or len(examples) // fit.batch_size,
            learning_rate=fit.learning_rate,
            weight_decay=fit.weight_decay,
            warmup_steps=fit.warmup_ratio,
            max_length=fit.max_seq_length,
            seed=fit.seed,
            bf16=use_bf16(device),  # SFTConfig's default is bf16 everywhere; ours only where the CPU has it
            gradient_checkpointing=False,  # SFTConfig's default is on; ours trains without it
            use_cpu=device.type == "cpu",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(settings.base_model)
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        trainer = SFTTrainer(
            model=AutoModelForCausalLM.from_pretrained(settings.base_model, dtype=dtype),
            args=config,
            train_dataset=Dataset.from_list([{"messages": list(e.messages)} for e in examples]),
            processing_class=tokenizer,
            peft_config=lora.peft_config(),
        )
        trainer.remove_callback(PrinterCallback)  # it prints the logs to stdout, where the report goes
        clock = Clock()
        trainer.add_callback(clock)
        trainer.train()
        return clock.ended - clock.started

    return run


def _alternate(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each side's seconds in each of `rounds` rounds, the sides taking turns in alternating order (A B, B A, ...)."""
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        for name in list(sides) if index % 2 == 0 else list(reversed(sides)):
            seconds[name].append(sides[name]())
    return seconds


def _report(
    names: tuple[str, str],
    round_tokens: int,
    seconds: dict[str, list[float]],
    settings: BenchSettings,
    steps: int,
    target: float,
) -> dict[str, Any]:
    """Figures from the rounds' medians: the machine may be shared, and a burst of load there slows one round
    of one side many times over, which a total or a mean would pass on to the result."""
    ours_name, baseline_name = names
    rates = {name: round_tokens / statistics.median(values) for name, values in seconds.items()}
    round_ratios = [round(b / a, 3) for a, b in zip(seconds[ours_name], seconds[baseline_name], strict=True)]
    ratio = rates[ours_name] / rates[baseline_name]
    fit = settings.fit
    return {
        "backend": ours_name,
        "tokens_per_s": round(rates[ours_name], 1),
        "baseline": {"name": baseline_name, "tokens_per_s": round(rates[baseline_name], 1)},
        "ratio": round(ratio, 3),
        "target_ratio": target,
        "meets_target": ratio >= target,
        "round_ratios": round_ratios,
        "rounds": len(round_ratios),
        "round_tokens": round_tokens,
        "round_seconds": {name: [round(value, 3) for value in values] for name, values in seconds.items()},
        "settings": {
            "base_model": settings.base_model,
            "device": settings.device,
            "steps": steps,
            "examples": steps * fit.batch_size,
            "batch_size": fit.batch_size,
            "max_seq_length": fit.max_seq_length,
            "learning_rate": fit.learning_rate,
            "seed": fit.seed,
            "bf16": use_bf16(torch.device(settings.device)),
            "gradient_checkpointing": False,
            "lora": asdict(settings.lora),
        },
    }


def _demo_base(settings: Settings) -> str:
    """The demo base model, built (and cached) the way the app builds it."""
    from playground.runtime import resolve_base

    return str(resolve_base(settings.with_overrides(base_model="demo")).path)


def run_finetune_bench(
    steps: int = DEFAULT_STEPS, rounds: int = DEFAULT_ROUNDS, base_model: str | None = None
) -> dict[str, Any]:
    """The transformers + peft backend against TRL's SFTTrainer on the CPU."""
    if steps < 1 or rounds < 1:
        raise UserError("steps and rounds must be at least 1")
    lora, fit = QUICK_DEMO
    settings = BenchSettings(base_model or _demo_base(Settings()), lora, replace(fit, eval_every=0), "cpu")
    runners = {"transformers": ours(settings, choose_backend("transformers")), "trl.SFTTrainer": sft_trainer(settings)}
    warm_up = bench_examples(WARM_UP_STEPS * fit.batch_size, fit.seed + 1)
    examples = bench_examples(steps * fit.batch_size, fit.seed)
    with tempfile.TemporaryDirectory() as folder:
        for name, run in runners.items():
            run(warm_up, replace(settings.fit, max_steps=WARM_UP_STEPS), Path(folder) / f"warm-up-{name}")
        timed = replace(settings.fit, max_steps=steps)
        sides = {name: partial(run, examples, timed, Path(folder) / name) for name, run in runners.items()}
        seconds = _alternate(sides, rounds)
    tokens = real_tokens(settings.base_model, examples, fit.max_seq_length)
    return _report(("transformers", "trl.SFTTrainer"), tokens, seconds, settings, steps, TARGET_RATIO)


# -- the GPU bench: each side in its own process -----------------------------------------------------------------


def _side_in_process(side: str, settings: BenchSettings, steps: int) -> float:
    """Runs `python -m playground.bench.finetune SIDE ...` (warm-up and one timed pass); its seconds."""
    request = {"side": side, "base_model": settings.base_model, "lora": asdict(settings.lora), "steps": steps}
    request["fit"] = asdict(settings.fit)
    done = subprocess.run(
        [sys.executable, "-m", "playground.bench.finetune", json.dumps(request)],
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        check=True,
        text=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def run_gpu_finetune_bench(
    steps: int = GPU_DEFAULT_STEPS, rounds: int = DEFAULT_ROUNDS, base_model: str | None = None
) -> dict[str, Any]:
    """Unsloth against transformers + peft on a CUDA GPU, each side in a fresh process every round."""
    problem = BACKENDS["unsloth"].problem()
    if problem is not None:
        raise BenchUnavailable(f"bench finetune --gpu needs a CUDA GPU with unsloth installed: {problem}")
    lora, fit = QUICK_DEMO
    base = base_model or Settings().base_model
    if base in ("", "demo"):
        base = _demo_base(Settings())
    # Dropout 0 on both sides: Unsloth's fast LoRA kernels need it.
    settings = BenchSettings(base, replace(lora, dropout=0.0), replace(fit, eval_every=0, max_seq_length=512), "cuda")

    sides = {name: partial(_side_in_process, name, settings, steps) for name in ("unsloth", "transformers")}
    seconds = _alternate(sides, rounds)
    examples = bench_examples(steps * settings.fit.batch_size, fit.seed)
    tokens = real_tokens(base, examples, settings.fit.max_seq_length)
    return _report(("unsloth", "transformers"), tokens, seconds, settings, steps, GPU_TARGET_RATIO)


def _run_side(request: dict[str, Any]) -> dict[str, float]:
    lora = LoraSettings(**{**request["lora"], "target_modules": tuple(request["lora"]["target_modules"])})
    fit = FitSettings(**request["fit"])
    settings = BenchSettings(request["base_model"], lora, fit, "cuda")
    backend = choose_backend(request["side"])
    run = ours(settings, backend)
    steps = request["steps"]
    with tempfile.TemporaryDirectory() as folder:
        warm_up = bench_examples(WARM_UP_STEPS * fit.batch_size, fit.seed + 1)
        run(warm_up, replace(fit, max_steps=WARM_UP_STEPS), Path(folder) / "warm-up")
        examples = bench_examples(steps * fit.batch_size, fit.seed)
        return {"seconds": run(examples, replace(fit, max_steps=steps), Path(folder) / "timed")}


if __name__ == "__main__":
    # One side of the GPU bench; the last stdout line is its JSON result.
    print(json.dumps(_run_side(json.loads(sys.argv[1]))), flush=True)
