"""Command line: serve the page, or compare / evaluate / prepare from the terminal.

python -m playground                      # serve on 127.0.0.1:7860
python -m playground compare "QUESTION" --json   # or --markdown: a report with figures, answers and chunks
python -m playground eval [--questions FILE] [--arms rag,hybrid] [--out rows.csv] --json
python -m playground finetune --data FILE --json   # train a LoRA adapter on the loaded base model
python -m playground forgetting --json    # the adapter against the base model on general text and questions
python -m playground freshness --json     # a fact changes: RAG re-indexes, the adapter is re-fine-tuned; both timed
python -m playground prepare              # build the demo model and index ahead of time
python -m playground leaderboard --json   # the blind arena's ratings, from the stored votes
python -m playground advise --style much --changes often --json   # RAG, fine-tuning or hybrid, citing measurements
python -m playground documents|jobs|adapters --json   # what is stored; --delete FILE, --cancel JOB (cli_manage.py)
python -m playground arena "QUESTION"     # a blind match in the terminal: two unnamed answers, your vote names them
python -m playground bench retrieval|ingest|finetune|compare|startup --json
python -m playground bench all [--quick] --json   # every bench in turn: one table of figures against their targets
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from adapters.jobs.events import BackendChosen, DatasetRead, Eval, Forgetting, JobEvent, Step
from adapters.training.backends import AUTO, preferences
from pipelines.retrieval_modes import DEFAULT_MODE, RetrievalMode
from playground import cli_manage
from playground.advisor_rules import QUESTIONS, Answers
from playground.config import Settings
from playground.logs import configure_logging

SUBCOMMANDS = (
    "serve",
    "compare",
    "eval",
    "forgetting",
    "freshness",
    "prepare",
    "bench",
    "index",
    "finetune",
    "leaderboard",
    "advise",
    *cli_manage.COMMANDS,
)


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
    shown = compare.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the comparison as JSON")
    shown.add_argument("--markdown", action="store_true", help="print a Markdown report (figures, answers, chunks)")
    compare.add_argument(
        "--support",
        action="store_true",
        help="mark each sentence of the RAG, fine-tuned and hybrid answers: backed by a chunk, the training data, or "
        "neither",
    )
    evaluate = commands.add_parser(
        "eval",
        parents=[common, decoding],
        help="score the arms over a question set, with 95 %% intervals",  # %% : argparse formats help with %
    )
    evaluate.add_argument(
        "--questions",
        help="JSONL or CSV with question, reference and optional fact, source, kind (default: the sample set)",
    )
    evaluate.add_argument("--limit", type=int, help="only the first N questions")
    evaluate.add_argument("--out", type=Path, help="write the rows (one per question and arm) to this CSV file")
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")
    forgetting = commands.add_parser(
        "forgetting", parents=[common], help="base model vs adapter on general text and questions (forgetting)"
    )
    forgetting.add_argument("--json", action="store_true", help="print the figures as JSON")
    fresh = commands.add_parser(
        "freshness", parents=[common, decoding], help="change a fact in a private copy: who learns it, how fast"
    )
    fresh.add_argument("--file", help="a knowledge-base file (default: the guided drill's, glacier-15-sleeping-bag.md)")
    fresh.add_argument("--old", help="the fact as the file states it (default: the guided drill's, $319)")
    fresh.add_argument("--new", help="what it becomes (default: $339)")
    fresh.add_argument("--question", action="append", help="a question the fact answers (repeatable)")
    fresh.add_argument("--no-retrain", action="store_true", help="skip the timed re-fine-tune")
    fresh.add_argument("--json", action="store_true", help="print the drill's figures and answers as JSON")
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
    board = commands.add_parser(
        "leaderboard", help="the blind arena's ratings with 95 %% intervals, from the votes under PLAYGROUND_HOME"
    )
    board.add_argument("--home", help="runtime data folder (PLAYGROUND_HOME, default .playground)")
    board.add_argument("--json", action="store_true", help="print the boards and the position-bias check as JSON")
    advise = commands.add_parser(
        "advise", help="RAG, fine-tuning or hybrid, from your answers and the measurements under PLAYGROUND_HOME"
    )
    advise.add_argument("--home", help="runtime data folder (PLAYGROUND_HOME, default .playground)")
    for asked in QUESTIONS:  # one flag per question of the advisor, as the page asks them
        if asked.choices:
            labels = "; ".join(f"{value}: {label}" for value, label in asked.choices)
            default = getattr(Answers(), asked.name)
            advise.add_argument(
                f"--{asked.name}",
                choices=[value for value, _ in asked.choices],
                default=default,
                help=f"{asked.text} ({labels}; default {default})".replace("%", "%%"),
            )
        else:
            advise.add_argument(f"--{asked.name}", action="store_true", help=asked.text)
    advise.add_argument("--run", help="the evaluation run to cite (default: the latest stored)")
    advise.add_argument("--json", action="store_true", help="print the advice, its reasons and evidence as JSON")
    cli_manage.add_parsers(commands, decoding, common)  # documents, jobs, adapters, arena
    bench = commands.add_parser("bench", help="benchmarks, each against a baseline measured in the same run")
    bench.add_argument("target", choices=["retrieval", "ingest", "finetune", "compare", "startup", "all"])
    bench.add_argument("--chunks", type=int, help="retrieval: stored chunks (100000); ingest: chunks to index (600)")
    bench.add_argument("--queries", type=int, default=50, help="retrieval only")
    bench.add_argument("--steps", type=int, help="finetune: training steps per side and round (CPU 40, GPU 60)")
    bench.add_argument(
        "--rounds", type=int, help="rounds, the sides taking turns (finetune 5, finetune --gpu 3, compare 3, startup 2)"
    )
    bench.add_argument("--gpu", action="store_true", help="finetune: Unsloth against transformers + peft on CUDA")
    bench.add_argument("--tokens", type=int, help="compare: new tokens per arm (64; with --concurrency 32)")
    bench.add_argument(
        "--concurrency",
        help="compare: users asking at once, e.g. 1,4,16: micro-batching against serving them one at a time",
    )
    bench.add_argument(
        "--base",
        help="finetune: base model folder or hub id (CPU: the demo model); --gpu also random:llama-1b, "
        "a randomly initialised model of Llama-3.2-1B's shape",
    )
    bench.add_argument("--seq-len", help="finetune --gpu: example lengths in tokens, separated by commas (1024,2048)")
    bench.add_argument(
        "--quick", action="store_true", help="all: small settings for every bench (minutes; not representative)"
    )
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
    if model["source"] == "served" and model.get("note"):
        print(f"Answered by: {model['note']}")  # which server, at which address
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
    for name, found in result.get("support", {}).get("answers", {}).items():
        counts = found["counts"]
        print(
            f"Support, {name}: {counts['chunk']} sentences backed by a retrieved chunk, {counts['training']} by the "
            f"training data, {counts['none']} by neither {found['note']}".rstrip()
        )


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


def _memory_problem(
    base: Any, examples: Any, preset: str, fit: dict[str, Any], backend: str, device: str
) -> str | None:
    """Why the job will not fit in memory (as the page refuses it), or None; None too when the base model's config
    does not name its sizes."""
    from transformers import AutoConfig, AutoTokenizer

    from adapters.datasets import token_lengths
    from adapters.training.backends import choose_backend
    from adapters.training.memory import job_estimate
    from adapters.training.train import job_settings

    try:
        config = AutoConfig.from_pretrained(str(base.path))
        chosen = choose_backend(backend, probe=False).name
        lora_settings, fit_settings, _ = job_settings(preset, None, fit, config, chosen, device or None)
        longest = max(token_lengths(AutoTokenizer.from_pretrained(str(base.path)), examples), default=0)
        peak, free = job_estimate(
            config,
            lora_settings,
            fit_settings,
            chosen,
            device or None,
            longest,
        )
    except (AttributeError, TypeError, ValueError, OSError, UserError):  # the job's own checks say what is wrong
        return None
    return peak.problem(free)


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
    if problem := _memory_problem(base, loaded.examples, args.preset, fit, args.backend, settings.device):
        _log(f"error: {problem}")
        return 2
    done = run_here(
        settings.home,
        base,
        args.data,
        args.name,
        args.preset,
        fit,
        args.holdout,
        args.backend,
        _print,
        general_set=settings.general_data,
    )
    result = {
        "name": done.adapter,
        "path": done.path,
        "backend": done.backend,
        "steps": done.steps,
        "train_loss": done.train_loss,
        "eval_loss": done.eval_loss,
        "tokens_per_s": done.tokens_per_s,
        "status": done.state,
        "forgetting": _forgetting_of(done, settings.home),
    }
    if done.state == "failed":
        _log(f"error: {done.error}")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 1 if done.state == "failed" else 0


def _forgetting_of(done, home: Path) -> dict:
    """The forgetting check the job stored with its adapter (empty when it did not run)."""
    from adapters.registry import AdapterRegistry

    if not done.adapter:
        return {}
    found = AdapterRegistry(home / "adapters").get(done.adapter)
    return found.forgetting if found else {}


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
        case Forgetting():
            return f"forgetting check: {event.sentence or event.error}"
    return json.dumps({k: v for k, v in event.to_json().items() if k != "time"})


def _leaderboard(args: argparse.Namespace) -> int:
    """Reads the vote log only: no model loads."""
    from playground.leaderboard import leaderboard
    from playground.votes import VoteLog

    stored = VoteLog(Settings().with_overrides(home=Path(args.home) if args.home else None).home).read()
    for problem in stored.problems:
        _log(f"warning: skipped {problem}")
    board = leaderboard(stored.votes, stored.problems)
    if args.json:
        print(json.dumps(board.to_json(), indent=2))
        return 0
    print(f"{board.votes} votes; rating [95 % bootstrap interval], Elo scale")
    for title, standings in (("per arm", board.by_arm), ("per arm and adapter", board.by_adapter)):
        print(f"{title}:")
        for s in standings:
            rating = "unrated" if s.rating is None else f"{s.rating:.0f}"
            if s.low is not None and s.high is not None:
                rating += f" [{s.low:.0f}, {s.high:.0f}]"
            rate = "–" if s.win_rate is None else f"{s.win_rate:.0%}"
            counts = f"won {s.wins}, lost {s.losses}, tied {s.ties}, both bad {s.both_bad}"
            print(f"  {s.player}: {rating}; win rate {rate} ({counts})")
    print(board.position.sentence)
    if board.caution:
        print(board.caution)
    return 0


def _advise(args: argparse.Namespace) -> int:
    """Reads what is stored under PLAYGROUND_HOME only: no model loads."""
    from playground.advisor import NOTHING_MEASURED, AdvisorService, reason_line

    answers = Answers(**{asked.name: getattr(args, asked.name) for asked in QUESTIONS})
    home = Settings().with_overrides(home=Path(args.home) if args.home else None).home
    advice = AdvisorService(home).advise(answers, args.run)
    if args.json:
        print(json.dumps(advice.to_json(), indent=2))
        return 0
    print(advice.headline)
    for sign, rules in (("+", advice.decision.reasons), ("-", advice.decision.against)):
        for rule in rules:
            print(f"  {sign} {reason_line(rule)}")
    for cited in advice.evidence:
        print(f"measured: {cited.sentence}")
    if not advice.evidence:
        print(NOTHING_MEASURED)
    for note in advice.contradictions:
        print(f"contradiction: {note}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.target == "all":
        from playground.bench import all as bench_all

        return bench_all.main(args)
    if args.quick:
        raise UserError("--quick is for bench all only")
    for flag in ("chunks", "queries", "steps", "rounds", "tokens"):
        value = getattr(args, flag, None)
        if value is not None and value < (2 if flag == "tokens" else 1):
            raise UserError(f"--{flag} must be at least {2 if flag == 'tokens' else 1}, got {value}")
    if args.target == "finetune":
        from playground.bench import finetune

        try:
            if args.gpu:
                steps = finetune.GPU_DEFAULT_STEPS if args.steps is None else args.steps
                lengths = finetune.parse_seq_lens(args.seq_len)
                report = finetune.run_gpu_finetune_bench(steps, args.rounds or 3, args.base, lengths)
            else:
                steps = finetune.DEFAULT_STEPS if args.steps is None else args.steps
                report = finetune.run_finetune_bench(steps, args.rounds or 5, args.base)
        except (UserError, finetune.BenchUnavailable) as error:
            _log(f"error: {error}")
            return 2
    elif args.target == "compare" and args.concurrency:
        from playground.bench import concurrency
        from playground.runtime import start

        try:
            levels = concurrency.parse_levels(args.concurrency)
            tokens = args.tokens or concurrency.DEFAULT_TOKENS
            report = concurrency.run_concurrency_bench(start(Settings()), levels, args.rounds or 3, tokens)
        except UserError as error:
            _log(f"error: {error}")
            return 2
    elif args.target == "compare":
        from playground.bench.compare import run_compare_bench

        try:
            report = run_compare_bench(rounds=args.rounds or 3, max_new_tokens=args.tokens or 64)
        except UserError as error:
            _log(f"error: {error}")
            return 2
    elif args.target == "startup":
        from playground.bench.startup import run_startup_bench

        try:
            report = run_startup_bench(rounds=args.rounds or 2)
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
    if args.command == "leaderboard":
        return _leaderboard(args)
    if args.command == "advise":
        return _advise(args)
    if args.command in ("documents", "jobs", "adapters"):
        return getattr(cli_manage, args.command)(args)
    if args.command == "arena":
        from playground.compare import check_request

        options = _options(args)
        check_request(args.question, options)  # a bad question ends here, before the models load
        return cli_manage.arena(args, options, _settings(args))

    from playground.runtime import start

    items = None
    try:
        settings = _settings(args)
        if args.command in ("compare", "eval"):
            from playground.compare import check_request

            check_request(args.question if args.command == "compare" else "-", _options(args))
        if args.command == "eval":  # a bad question file is found before the models load
            items = _questions(args, settings)
            if args.out is not None and not args.out.resolve().parent.is_dir():
                raise UserError(f"--out {args.out}: there is no folder {args.out.resolve().parent}")
        runtime = start(settings)
    except (UserError, OSError) as error:  # bad settings, paths or files
        raise UserError(str(error)) from None

    if args.command == "prepare":
        built = {"demo_build": runtime.demo_build} if runtime.demo_build else {}
        _log(json.dumps({"model": runtime.model.__dict__, "startup": runtime.startup, **built}))
        return 0
    if args.command == "serve":
        from playground.app import build_app, launch

        launch(build_app(runtime), args.host, args.port, args.share, runtime.workspaces.limits.max_bytes)
        return 0

    from playground.compare import CompareService

    service = CompareService(runtime)
    if args.command == "forgetting":
        from playground.eval_service import EvaluateService

        try:
            report = EvaluateService(service).forgetting(None)  # the adapter the runtime loaded (--adapter)
        except UserError as error:
            raise UserError(str(error)) from None
        print(json.dumps(report.to_json(), indent=2) if args.json else report.sentence)
        return 0
    if args.command == "freshness":
        return _freshness(args, service)
    if args.command == "compare":
        try:
            state = service.compare(args.question, _options(args))
        except UserError as error:
            raise UserError(str(error)) from None
        result = state.to_json() | ({"support": service.support.check(state).to_json()} if args.support else {})
        if args.json:
            print(json.dumps(result, indent=2))
        elif args.markdown:
            from playground.export import comparison_markdown

            print(comparison_markdown(result), end="")
        else:
            _print_comparison(result)
        return 0

    from playground import eval_history
    from playground.evaluate import EvalReport, run

    report = None
    try:
        for step in run(service, items, _options(args), runtime.embedder.model):
            if isinstance(step, EvalReport):
                report = step
            else:
                _log(f"eval: {step.text}")
    except UserError as error:
        raise UserError(str(error)) from None
    assert report is not None
    folder = eval_history.save(runtime.settings.home, report)
    rows = eval_history.rows_csv(report.rows)
    if args.out is not None:
        args.out.write_text(rows, encoding="utf-8")
        _log(f"eval: {len(report.rows)} rows written to {args.out}")
    _log(f"eval: stored as {folder}")
    if args.json:
        print(json.dumps(report.to_json(with_rows=False), indent=2))
    else:
        _print_summary(report.summary)
    return 0


def _freshness(args: argparse.Namespace, service) -> int:
    from dataclasses import replace

    from playground.compare import CompareService
    from playground.finetune import FinetuneService
    from playground.freshness import FreshnessService

    finetune = FinetuneService(service.runtime) if not args.no_retrain else None
    if finetune is not None:  # the re-tuned adapter answers too: it is attached when asked for
        service = CompareService(service.runtime, attach=finetune.ensure_loaded)
    try:
        drill = FreshnessService(service, refinetune=finetune.train_and_wait if finetune else None)
        guided = drill.guided()
        change = replace(
            guided,
            source=args.file or guided.source,
            old=args.old or guided.old,
            new=args.new or guided.new,
            questions=tuple(args.question) if args.question else guided.questions,
        )
        report = drill.run(
            change, _options(args), retrain=not args.no_retrain, progress=lambda t: _log(f"freshness: {t}")
        )
    except UserError as error:
        raise UserError(str(error)) from None
    finally:
        if finetune is not None:
            finetune.jobs.close()
    print(json.dumps(report.to_json(), indent=2) if args.json else report.sentence)
    return 0


def _print_summary(summary: dict) -> None:
    from playground.evaluate import METRIC_LABELS, QUALITY

    arms = summary["arms"]
    print(f"{summary['questions']} questions; mean [95 % bootstrap interval]")
    for metric in (*QUALITY, "latency_s"):
        cells = []
        for arm in arms:
            found = summary["metrics"][arm][metric]
            cells.append(
                f"{arm} {found['mean']:.2f} [{found['low']:.2f}, {found['high']:.2f}]" if found else f"{arm} -"
            )
        print(f"  {METRIC_LABELS[metric]}: " + "; ".join(cells))
    for metric, found in summary["retrieval"].items():
        if found:
            print(f"  retrieval {METRIC_LABELS[metric]}: {found['mean']:.2f} [{found['low']:.2f}, {found['high']:.2f}]")
    for sentence in summary["findings"]:
        print(sentence)


def _questions(args: argparse.Namespace, settings: Settings):
    from dataclasses import replace

    from playground.questions import load_questions

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1, got {args.limit}")
    found = load_questions(Path(args.questions) if args.questions else settings.eval_data)
    return replace(found, items=found.items[: args.limit])


if __name__ == "__main__":
    raise SystemExit(main())
