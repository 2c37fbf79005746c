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
GPU_DEFAULT_STEPS = 30  # per side and round, after 2 warm-up steps; at ~2048 tokens, about 0.5 M tokens
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
        from datasets.utils.logging import disable_progress_bar
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
        from transformers.trainer_callback import PrinterCallback
        from trl import SFTConfig, SFTTrainer

        disable_progress_bar()  # four bars per round while TRL prepares the dataset: noise in `bench all`'s log

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

GPU_SEQ_LENS = (1024, 2048)
GPU_BATCH_SIZE = 8
GPU_MEMORY_TARGET = 0.3  # Unsloth's peak GPU memory / transformers + peft's at the longest length; at most
# Dense bf16 tensor-core peaks (NVIDIA's data sheets, SXM parts), for model FLOPs utilisation; others: not computed
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
GIB = 1024**3


def long_examples(tokenizer: Any, count: int, length: int, seed: int) -> list[ChatExample]:
    """`count` examples of about `length` tokens each: a sample question answered by sample answers joined until
    the conversation is that long (trained on the answer, as every example is). Short examples measure a step's
    fixed overhead, not the kernels (43-token examples gave Unsloth 1.375× where ~2048 gave 1.84×)."""
    pool = bench_examples(max(count, 64), seed)
    examples, at = [], 0
    for _ in range(count):
        question = pool[at % len(pool)].messages[0]
        answers: list[str] = []
        while True:
            answers.append(pool[at % len(pool)].messages[-1]["content"])
            at += 1
            messages = (question, {"role": "assistant", "content": "\n\n".join(answers)})
            rendered = tokenizer.apply_chat_template(list(messages), tokenize=False)
            if len(tokenizer(rendered, add_special_tokens=False)["input_ids"]) >= length:
                break
        examples.append(ChatExample(messages=messages))
    return examples


def model_flops_per_token(parameters: int, trainable: int, layers: int, hidden: int, length: int) -> float:
    """Training FLOPs per token: forward 2N, backward 2N through the activations plus 2 per trainable weight (a
    frozen weight gets no gradient), and causal attention's score and value products, 6·layers·hidden·length
    forward and backward. Recomputation by gradient checkpointing is not counted (it is not useful work)."""
    return 4 * parameters + 2 * trainable + 6 * layers * hidden * length


def _side_in_process(side: str, settings: BenchSettings, steps: int, length: int) -> dict[str, float]:
    """Runs `python -m playground.bench.finetune REQUEST` (warm-up and one timed pass); its figures."""
    request = {
        "side": side,
        "base_model": settings.base_model,
        "lora": asdict(settings.lora),
        "fit": asdict(settings.fit),
        "steps": steps,
        "length": length,
        "device": settings.device,
    }
    done = subprocess.run(
        [sys.executable, "-m", "playground.bench.finetune", json.dumps(request)],
        stdout=subprocess.PIPE,
        cwd=PROJECT_ROOT,
        check=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def random_base(folder: Path, shape: dict[str, Any]) -> str:
    """A randomly initialised Llama of `shape` (its config.json's sizes) with the demo model's tokenizer: a model
    of realistic size for the throughput bench where no weights can be downloaded (speed does not depend on them)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(_demo_base(Settings()))
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    with torch.device("cpu"):
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


# config.json sizes of public models, for `--base random:NAME`
SHAPES = {
    "llama-1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "tie_word_embeddings": True,
    },
}


def parse_seq_lens(text: str | None) -> tuple[int, ...]:
    if not text:
        return GPU_SEQ_LENS
    try:
        lengths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UserError(f"--seq-len takes token counts separated by commas (e.g. 1024,2048), got {text!r}") from None
    if not lengths or any(not 64 <= length <= 32768 for length in lengths):
        raise UserError(f"--seq-len: each length must be between 64 and 32768 tokens, got {text!r}")
    return lengths


def run_gpu_finetune_bench(
    steps: int = GPU_DEFAULT_STEPS,
    rounds: int = 3,
    base_model: str | None = None,
    seq_lens: tuple[int, ...] = GPU_SEQ_LENS,
) -> dict[str, Any]:
    """Unsloth against transformers + peft on a CUDA GPU at each sequence length, each side in a fresh process
    every round (importing Unsloth patches transformers for the whole process), the sides taking turns."""
    problem = BACKENDS["unsloth"].problem()
    if problem is not None:
        raise BenchUnavailable(f"bench finetune --gpu needs a CUDA GPU with unsloth installed: {problem}")
    with tempfile.TemporaryDirectory() as scratch:
        base = _gpu_base(base_model, Path(scratch))
        by_length = {length: _gpu_length(base, steps, rounds, length) for length in seq_lens}
    return _gpu_report(base_model or base, by_length, steps, rounds)


def _gpu_base(base_model: str | None, scratch: Path) -> str:
    base = base_model or Settings().base_model
    if base in ("", "demo"):
        return _demo_base(Settings())
    if base.startswith("random:"):
        shape = SHAPES.get(base.removeprefix("random:"))
        if shape is None:
            raise UserError(f"--base {base}: known shapes are {', '.join('random:' + n for n in SHAPES)}")
        return random_base(scratch / "random-base", shape)
    return base


def _gpu_length(base: str, steps: int, rounds: int, length: int) -> dict[str, Any]:
    lora, fit = QUICK_DEMO
    # Dropout 0 on both sides: Unsloth's fast LoRA kernels need it.
    fit = replace(fit, eval_every=0, max_seq_length=length, batch_size=GPU_BATCH_SIZE, checkpoint_every=0)
    settings = BenchSettings(base, replace(lora, dropout=0.0), fit, "cuda")
    sides = ("unsloth", "transformers")
    figures: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for index in range(rounds):
        for side in sides if index % 2 == 0 else sides[::-1]:
            figures[side].append(_side_in_process(side, settings, steps, length))
    return {"settings": settings, "figures": figures}


def _gpu_report(base: str, by_length: dict[int, dict[str, Any]], steps: int, rounds: int) -> dict[str, Any]:
    import transformers

    lengths: dict[str, Any] = {}
    for length, found in by_length.items():
        figures = found["figures"]
        rate = {side: statistics.median(f["tokens"] / f["seconds"] for f in runs) for side, runs in figures.items()}
        peak = {side: max(f["peak_gib"] for f in runs) for side, runs in figures.items()}
        mfu = {side: _median_or_none([f["mfu"] for f in runs]) for side, runs in figures.items()}
        lengths[str(length)] = {
            "tokens_per_s": {side: round(value, 1) for side, value in rate.items()},
            "ratio": round(rate["unsloth"] / rate["transformers"], 3),
            "round_ratios": [
                round((u["tokens"] / u["seconds"]) / (t["tokens"] / t["seconds"]), 3)
                for u, t in zip(figures["unsloth"], figures["transformers"], strict=True)
            ],
            "peak_gpu_gib": {side: round(value, 2) for side, value in peak.items()},
            "memory_ratio": round(peak["unsloth"] / peak["transformers"], 3),
            "mfu": {side: None if value is None else round(value, 3) for side, value in mfu.items()},
            "mean_tokens_per_example": round(figures["unsloth"][0]["tokens"] / (steps * GPU_BATCH_SIZE), 1),
        }
    longest = lengths[str(max(by_length))]
    first = next(iter(by_length.values()))
    side = first["figures"]["unsloth"][0]
    return {
        "ratio_at_longest": longest["ratio"],
        "target_ratio": GPU_TARGET_RATIO,
        "meets_target": longest["ratio"] >= GPU_TARGET_RATIO,
        "memory_ratio_at_longest": longest["memory_ratio"],
        "target_memory_ratio": GPU_MEMORY_TARGET,
        "meets_memory_target": longest["memory_ratio"] <= GPU_MEMORY_TARGET,
        "by_seq_len": lengths,
        "settings": {
            "base_model": base,
            "parameters": side["parameters"],
            "steps": steps,
            "rounds": rounds,
            "batch_size": GPU_BATCH_SIZE,
            "lora": asdict(first["settings"].lora),
            "gpu": side["gpu"],
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__, **side["versions"]},
        },
        "method": (
            "each side in a fresh process per round, the sides taking turns; 2 warm-up steps, then `steps` timed; "
            "tokens/s = real (non-padding) tokens / seconds of the timed steps; peak = torch.cuda."
            "max_memory_allocated; MFU = model FLOPs per token (4N + 2 × trainable + 6 × layers × hidden × length) "
            "× tokens/s / the GPU's dense bf16 peak"
        ),
    }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("peft", "trl", "unsloth", "bitsandbytes"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def _run_side(request: dict[str, Any]) -> dict[str, Any]:
    """One side of the GPU bench in this process: a warm-up pass, then `steps` timed steps on long examples."""
    from transformers import AutoConfig, AutoTokenizer

    lora = LoraSettings(**{**request["lora"], "target_modules": tuple(request["lora"]["target_modules"])})
    fit = FitSettings(**request["fit"])
    device = request.get("device", "cuda")
    settings = BenchSettings(request["base_model"], lora, fit, device)
    backend = choose_backend(request["side"]) if device == "cuda" else choose_backend("transformers")
    steps, length = request["steps"], request["length"]
    tokenizer = AutoTokenizer.from_pretrained(settings.base_model)
    gpu = device == "cuda" and torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as folder:
        warm_up = long_examples(tokenizer, WARM_UP_STEPS * fit.batch_size, length, fit.seed + 1)
        ours(settings, backend)(warm_up, replace(fit, max_steps=WARM_UP_STEPS), Path(folder) / "warm-up")
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        examples = long_examples(tokenizer, steps * fit.batch_size, length, fit.seed)
        seconds = ours(settings, backend)(examples, replace(fit, max_steps=steps), Path(folder) / "timed")
    tokens = sum(len(ids) for ids, _ in tokenize_examples(tokenizer, examples, fit.max_seq_length))
    config = AutoConfig.from_pretrained(settings.base_model)
    from adapters.training.memory import ModelShape

    shape = ModelShape.from_config(config)
    trainable = shape.layers * sum(
        lora.rank * sum(size) for name, size in shape.module_sizes().items() if name in lora.target_modules
    )
    name = torch.cuda.get_device_name() if gpu else "cpu"
    peak = next((value for key, value in PEAK_BF16_FLOPS.items() if key in name), None)
    per_token = model_flops_per_token(shape.parameters, trainable, shape.layers, shape.hidden, tokens // len(examples))
    return {
        "seconds": seconds,
        "tokens": tokens,
        "peak_gib": torch.cuda.max_memory_allocated() / GIB if gpu else 0.0,
        "mfu": per_token * tokens / seconds / peak if peak else None,
        "parameters": shape.parameters,
        "gpu": name,
        "versions": _versions(),
    }


if __name__ == "__main__":
    # One side of the GPU bench; the last stdout line is its JSON result.
    print(json.dumps(_run_side(json.loads(sys.argv[1]))), flush=True)
