"""Command line: serve the page, or compare / evaluate / prepare from the terminal.

python -m playground                      # serve on 127.0.0.1:7860
python -m playground compare "QUESTION" --json
python -m playground eval --json
python -m playground finetune --data FILE --json   # train a LoRA adapter on the loaded base model
python -m playground prepare              # build the demo model and index ahead of time
python -m playground bench retrieval|ingest|finetune|compare --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from adapters.errors import UserError
from adapters.jobs.events import BackendChosen, DatasetRead, Eval, JobEvent, Step
from adapters.training.backends import AUTO, preferences
from pipelines.retrieval_modes import DEFAULT_MODE, RetrievalMode
from playground.config import Settings
from playground.logs import configure_logging

SUBCOMMANDS = ("serve", "compare", "eval", "prepare", "bench", "index", "finetune")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _retrieval_mode(text: str) -> RetrievalMode:
    try:
        return RetrievalMode.parse(text)
    except UserError as error:  # argparse shows the message of this type only
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="runtime data folder (PLAYGROUND_HOME, default .playground)")
    common.add_argument("--base-model", help="hub id or folder of the base model (PLAYGROUND_BASE_MODEL)")
    common.add_argument(
        "--adapter", help="a registered adapter's name or a PEFT LoRA adapter folder (PLAYGROUND_ADAPTER)"
    )
    decoding = argparse.ArgumentParser(add_help=False)
    decoding.add_argument("--max-new-tokens", type=int)
    decoding.add_argument("--temperature", type=float)
    decoding.add_argument("--seed", type=int)
    decoding.add_argument("--no-hybrid", action="store_true", help="skip the hybrid answer (adapter + retrieval)")
    decoding.add_argument("--no-base", action="store_true", help="skip the base model alone (the control)")
    decoding.add_argument("--arms", help="comma-separated: any of base,rag,finetuned,hybrid (default: all)")
    decoding.add_argument("--top-k", type=int, help="chunks retrieved (PLAYGROUND_TOP_K)")
    decoding.add_argument(
        "--retrieval",
        type=_retrieval_mode,
        choices=list(RetrievalMode),
        default=DEFAULT_MODE,
        metavar="|".join(mode.value for mode in RetrievalMode),
        help=f"which retrieval stages RAG reads: {', '.join(f'{m.value} ({m.label})' for m in RetrievalMode)}",
    )
    decoding.add_argument("--rerank", action="store_true", help="rerank with the cross-encoder")
    decoding.add_argument("--files", help="comma-separated source files to retrieve from (default: all)")
    decoding.add_argument(
        "--timing", help="how the arms run side by side: interleaved, sequential (each alone) or batched"
    )

    top = argparse.ArgumentParser(prog="python -m playground", description="RAG or fine-tuning? playground")
    commands = top.add_subparsers(dest="command")
    serve = commands.add_parser("serve", parents=[common], help="serve the web page (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    compare = commands.add_parser("compare", parents=[common, decoding], help="compare the answers to one question")
    compare.add_argument("question")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    evaluate = commands.add_parser("eval", parents=[common, decoding], help="fact hit rate over a question set")
    evaluate.add_argument("--questions", help="JSONL with question, answer, fact, source (default: the sample set)")
    evaluate.add_argument("--limit", type=int, help="only the first N questions")
    evaluate.add_argument("--json", action="store_true")
    prepare = commands.add_parser("prepare", parents=[common], help="build the demo model and the index, then exit")
    prepare.add_argument(
        "--rebuild-demo",
        action="store_true",
        help="train the demo model anew (seeded) and replace the shipped copy; prints its build figures",
    )
    index = commands.add_parser("index", parents=[common], help="add files or folders to the knowledge base")
    index.add_argument("paths", nargs="+", type=Path)
    index.add_argument("--json", action="store_true", help="one {file, status, chunks, error} per file")
    finetune = commands.add_parser("finetune", parents=[common], help="train a LoRA adapter (the page's job code)")
    finetune.add_argument("--data", required=True, type=Path, help="chat JSONL, Alpaca, ShareGPT or CSV")
    finetune.add_argument("--base", dest="base_model", help="base model (default: the one the page loads)")
    finetune.add_argument("--max-steps", type=int)
    finetune.add_argument("--name", help="adapter name (made unique; default: the data file's name)")
    finetune.add_argument("--preset", default="quick demo")
    finetune.add_argument("--holdout", type=float, default=0.1, help="share of examples held out for eval loss")
    finetune.add_argument("--backend", default=AUTO, choices=preferences(), help="auto: the first that can run")
    finetune.add_argument("--json", action="store_true", help="print {name, path, backend, steps, ...}")
    bench = commands.add_parser("bench", help="benchmarks, each against a baseline measured in the same run")
    bench.add_argument("target", choices=["retrieval", "ingest", "finetune", "compare"])
    bench.add_argument("--chunks", type=int, help="retrieval: stored chunks (100000); ingest: chunks to index (600)")
    bench.add_argument("--queries", type=int, default=50, help="retrieval only")
    bench.add_argument("--steps", type=int, help="finetune: training steps per side and round (CPU 40, GPU 60)")
    bench.add_argument("--rounds", type=int, help="rounds, the sides taking turns (finetune 5, compare 3)")
    bench.add_argument("--gpu", action="store_true", help="finetune: Unsloth against transformers + peft on CUDA")
    bench.add_argument("--tokens", type=int, help="compare: new tokens per arm (64)")
    bench.add_argument("--base", help="finetune: base model folder or hub id (CPU: the demo model)")
    bench.add_argument("--json", action="store_true")
    return top


def _settings(args: argparse.Namespace) -> Settings:
    return Settings().with_overrides(
        home=Path(args.home) if args.home else None,
        base_model=args.base_model,
        adapter=args.adapter,
        rebuild_demo=getattr(args, "rebuild_demo", False) or None,
    )


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _options(args: argparse.Namespace):
    from playground.compare import ROW_NAMES, CompareOptions

    arms = _list(args.arms) or ROW_NAMES
    skipped = {name for name, flag in (("hybrid", args.no_hybrid), ("base", args.no_base)) if flag}
    return CompareOptions(
        arms=tuple(arm for arm in arms if arm not in skipped),
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        top_k=args.top_k,
        retrieval=args.retrieval,
        rerank=args.rerank,
        files=_list(args.files),
        timing=args.timing,
    )


def _print_comparison(result: dict) -> None:
    model = result["model"]
    print(f"Base model: {model['base']} ({model['source']}); adapter: {model['adapter'] or 'none'}")
    for index, chunk in enumerate(result["chunks"], start=1):
        print(f"  [{index}] {chunk['source']} (score {chunk['score']:.3f})")
    for name, answer in result["answers"].items():
        if answer and "error" in answer:
            print(f"\n{name}: (no answer) {answer['error']}")
        elif answer:
            adapter = f" [adapter {answer['adapter']}]" if answer.get("adapter") else ""
            print(f"\n{name}{adapter}: {answer['text']}")
            print(
                f"  {answer['latency_s']:.3f} s total, {answer['ttft_s']:.3f} s to first token "
                f"(retrieval {answer['retrieval_s']:.3f} s, prefill {answer['prefill_s']:.3f} s), "
                f"{answer['tokens_per_s']:.1f} tokens/s, {answer['prompt_tokens']} prompt + "
                f"{answer['completion_tokens']} completion tokens"
            )
    print(f"\n{result['summary']}")
    print(f"How measured: {result['timing']['note']}")


def _index(args: argparse.Namespace) -> int:
    from playground.knowledge_base import index_files

    try:
        reports = index_files(_settings(args), args.paths)
    except (UserError, OSError) as error:
        _log(f"error: {error}")
        return 2
    # A file whose content is indexed already counts as indexed (its chunks are there, once).
    rows = [
        {"file": r.file, "status": "error" if r.status == "error" else "indexed", "chunks": r.chunks, "error": r.error}
        for r in reports
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['status']:8} {row['file']} ({row['chunks']} chunks) {row['error']}".rstrip())
    return 1 if any(r.status == "error" for r in reports) else 0


def _finetune(args: argparse.Namespace) -> int:
    from adapters.datasets import load_dataset
    from adapters.jobs.manager import run_here
    from adapters.training.train import PRESETS
    from playground.runtime import resolve_base

    if args.preset not in PRESETS:
        _log(f"error: unknown preset {args.preset!r}; expected one of {', '.join(PRESETS)}")
        return 2
    if args.max_steps is not None and args.max_steps < 1:
        _log("error: --max-steps must be at least 1")
        return 2
    if not args.data.is_file():
        _log(f"error: {args.data} is not a file")
        return 2
    loaded = load_dataset(args.data)  # before anything loads: bad data ends here, naming the lines
    if not loaded.ok:
        for issue in loaded.issues:
            _log(f"error: {issue}")
        return 2
    settings = _settings(args)
    try:
        base = resolve_base(settings)
    except (UserError, OSError) as error:
        _log(f"error: {error}")
        return 2
    fit = {"max_steps": args.max_steps} if args.max_steps else {}
    done = run_here(settings.home, base, args.data, args.name, args.preset, fit, args.holdout, args.backend, _print)
    result = {
        "name": done.adapter,
        "path": done.path,
        "backend": done.backend,
        "steps": done.steps,
        "train_loss": done.train_loss,
        "eval_loss": done.eval_loss,
        "tokens_per_s": done.tokens_per_s,
        "status": done.state,
    }
    if done.state == "failed":
        _log(f"error: {done.error}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 1 if done.state == "failed" else 0


def _print(event: JobEvent) -> None:
    _log(_progress_line(event))


def _progress_line(event: JobEvent) -> str:
    """One line per event of a job the CLI runs; a type without words here prints as its JSON."""
    match event:
        case Step(loss=float() as loss):
            eta = "" if event.eta_s is None else f", ETA {event.eta_s:.0f} s"
            return (
                f"step {event.step}/{event.total_steps} train loss (last step) {loss:.4f} "
                f"{event.tokens_per_s or 0:.0f} tokens/s{eta}"
            )
        case Eval(eval_loss=float() as loss):
            return f"held-out loss {loss:.4f} at step {event.step}"
        case BackendChosen():
            return f"backend: {event.name} ({event.reason})"
        case DatasetRead():
            return f"dataset: {event.train} training and {event.holdout} held-out examples ({event.format})"
    return json.dumps({k: v for k, v in event.to_json().items() if k != "time"})


def _bench(args: argparse.Namespace) -> int:
    for flag in ("chunks", "queries", "steps", "rounds", "tokens"):
        value = getattr(args, flag, None)
        if value is not None and value < (2 if flag == "tokens" else 1):
            raise UserError(f"--{flag} must be at least {2 if flag == 'tokens' else 1}, got {value}")
    if args.target == "finetune":
        from playground.bench import finetune

        try:
            if args.gpu:
                steps = finetune.GPU_DEFAULT_STEPS if args.steps is None else args.steps
                report = finetune.run_gpu_finetune_bench(steps, args.rounds or 5, args.base)
            else:
                steps = finetune.DEFAULT_STEPS if args.steps is None else args.steps
                report = finetune.run_finetune_bench(steps, args.rounds or 5, args.base)
        except (UserError, finetune.BenchUnavailable) as error:
            _log(f"error: {error}")
            return 2
    elif args.target == "compare":
        from playground.bench.compare import run_compare_bench

        try:
            report = run_compare_bench(rounds=args.rounds or 3, max_new_tokens=args.tokens or 64)
        except UserError as error:
            _log(f"error: {error}")
            return 2
    elif args.target == "ingest":
        from playground.bench.ingest import DEFAULT_CHUNKS, run_ingest_bench

        report = run_ingest_bench(chunks=DEFAULT_CHUNKS if args.chunks is None else args.chunks)
    else:
        from playground.bench.retrieval import run_retrieval_bench

        report = run_retrieval_bench(chunks=100_000 if args.chunks is None else args.chunks, queries=args.queries)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*SUBCOMMANDS, "-h", "--help"):
        argv = ["serve", *argv]
    args = parser().parse_args(argv)
    configure_logging()
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars on every start say nothing
    try:
        return _run(args)
    except UserError as error:  # the user's to fix: one line, exit code 2
        _log(f"error: {error}")
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "bench":
        return _bench(args)
    if args.command == "index":
        return _index(args)
    if args.command == "finetune":
        return _finetune(args)

    from playground.runtime import start

    items = []
    try:
        settings = _settings(args)
        if args.command in ("compare", "eval"):
            from playground.compare import check_request

            check_request(args.question if args.command == "compare" else "-", _options(args))
        if args.command == "eval":  # a bad question file is found before the models load
            items = _questions(args, settings)
        runtime = start(settings)
    except (UserError, OSError) as error:  # bad settings, paths or files
        raise UserError(str(error)) from None

    if args.command == "prepare":
        built = {"demo_build": runtime.demo_build} if runtime.demo_build else {}
        _log(json.dumps({"model": runtime.model.__dict__, "startup": runtime.startup, **built}))
        return 0
    if args.command == "serve":
        from playground.app import build_app, launch

        launch(build_app(runtime), args.host, args.port, args.share)
        return 0

    from playground.compare import CompareService

    service = CompareService(runtime)
    if args.command == "compare":
        try:
            result = service.compare(args.question, _options(args)).to_json()
        except UserError as error:
            raise UserError(str(error)) from None
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            _print_comparison(result)
        return 0

    from playground.evaluate import evaluate

    try:
        report = evaluate(service, items, _options(args), progress=lambda i, n: _log(f"eval: {i}/{n}"))
    except UserError as error:
        raise UserError(str(error)) from None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))
    return 0


def _questions(args: argparse.Namespace, settings: Settings) -> list:
    from playground.evaluate import load_questions

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    return load_questions(Path(args.questions) if args.questions else settings.eval_data)[: args.limit]


if __name__ == "__main__":
    raise SystemExit(main())
