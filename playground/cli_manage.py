"""The command line's mirror of the API's managing actions: the knowledge base's files, fine-tune jobs, adapters, and
a blind arena match voted on in the terminal.

python -m playground documents [--delete FILE] --json   # the files `index` added, with their chunks
python -m playground jobs [--cancel JOB] --json         # fine-tune jobs: state, step, losses, adapter
python -m playground adapters --json                    # the registered LoRA adapters
python -m playground arena "QUESTION" [--arms rag,finetuned]   # two unnamed answers; your vote names them

Everything but `arena` reads PLAYGROUND_HOME only: no model loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from adapters.errors import UserError
from playground.config import Settings

COMMANDS = ("documents", "jobs", "adapters", "arena")
JOB_FIELDS = ("id", "name", "state", "step", "total_steps", "loss", "eval_loss", "backend", "adapter", "error")
ADAPTER_FIELDS = ("name", "base_model", "status", "backend", "steps", "train_loss", "eval_loss", "created", "path")
VOTE_TRIES = 3


def add_parsers(commands: Any, decoding: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument("--home", help="runtime data folder (PLAYGROUND_HOME, default .playground)")
    documents = commands.add_parser("documents", parents=[home], help="the knowledge base's files (see index)")
    documents.add_argument("--delete", metavar="FILE", help="remove this file's chunks from the knowledge base")
    documents.add_argument("--json", action="store_true", help="one {file, chunks} per file")
    jobs = commands.add_parser("jobs", parents=[home], help="fine-tune jobs under PLAYGROUND_HOME, newest first")
    jobs.add_argument("--cancel", metavar="JOB", help="cancel this job (a running one stops after its step)")
    jobs.add_argument("--json", action="store_true", help="one object per job")
    adapters = commands.add_parser("adapters", parents=[home], help="the registered LoRA adapters, newest first")
    adapters.add_argument("--json", action="store_true", help="one object per adapter")
    arena = commands.add_parser(
        "arena", parents=[common, decoding], help="a blind match in the terminal: two unnamed answers, then your vote"
    )
    arena.add_argument("question")
    arena.add_argument("--json", action="store_true", help="print the match and the stored vote as JSON at the end")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings().with_overrides(home=Path(args.home) if args.home else None)


def _home(args: argparse.Namespace) -> Path:
    return _settings(args).home


def documents(args: argparse.Namespace) -> int:
    from playground.knowledge_base import delete_file, knowledge_base_files

    settings = _settings(args)
    if args.delete:
        removed = delete_file(settings, args.delete)
        print(f"removed {args.delete} ({removed} chunks)", file=sys.stderr)
    rows = [{"file": name, "chunks": chunks} for name, chunks in knowledge_base_files(settings).items()]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no files in the knowledge base under this home (add some with `index`)")
    for row in [] if args.json else rows:
        print(f"{row['file']} ({row['chunks']} chunks)")
    return 0


def jobs(args: argparse.Namespace) -> int:
    from adapters.jobs.manager import JobManager

    manager = JobManager(_home(args), lead=False)  # lists and cancels; never starts a queued job
    try:
        if args.cancel:
            try:
                print(manager.cancel(args.cancel), file=sys.stderr)
            except KeyError:
                raise UserError(f"No fine-tune job {args.cancel!r} under {_home(args)}.") from None
        rows = [{key: record[key] for key in JOB_FIELDS} for record in map(asdict, manager.jobs())]
    finally:
        manager.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        loss = "" if row["loss"] is None else f", loss {row['loss']:.4f}"
        made = f" → {row['adapter']}" if row["adapter"] else ""
        why = f" ({row['error']})" if row["error"] else ""
        print(f"{row['id']} {row['name']}: {row['state']}, step {row['step']}/{row['total_steps']}{loss}{made}{why}")
    if not rows:
        print("no fine-tune jobs under this home")
    return 0


def adapters(args: argparse.Namespace) -> int:
    from adapters.registry import AdapterRegistry

    rows = [
        {key: record[key] for key in ADAPTER_FIELDS}
        for record in (info.to_json() for info in AdapterRegistry(_home(args) / "adapters").list())
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        loss = "" if row["eval_loss"] is None else f", held-out loss {row['eval_loss']:.4f}"
        print(f"{row['name']}: {row['status']}, {row['steps']} steps on {row['base_model']} ({row['backend']}){loss}")
    if not rows:
        print("no adapters under this home (train one with `finetune`)")
    return 0


def arena(args: argparse.Namespace, options: Any, settings: Settings, ask: TextIO = sys.stdin) -> int:
    """Plays a match, prints A and B unnamed, reads the vote from `ask` (a line: a, b, tie or both_bad), stores it and
    only then names the arms."""
    from playground.arena import ArenaService
    from playground.compare import CompareService
    from playground.runtime import start
    from playground.votes import Outcome

    arena_service = ArenaService(CompareService(start(settings)))
    *_, match = arena_service.play(args.question, options, options.arms)
    if match.error:
        raise UserError(f"One of the arms could not answer: {match.error}")
    shown = sys.stderr if args.json else sys.stdout
    print(f"A: {match.answer_a}\n\nB: {match.answer_b}\n", file=shown, flush=True)
    outcome = _read_vote(ask, lambda: print(f"Which is better? {' / '.join(Outcome)}: ", end="", file=sys.stderr))
    vote = arena_service.vote(match, outcome)
    revealed = f"A was {_named(vote.arm_a, vote.adapter_a)}; B was {_named(vote.arm_b, vote.adapter_b)}."
    votes = len(arena_service.log.read().votes)  # a count: the ratings' bootstrap is not needed for it
    if args.json:
        print(json.dumps({**vote.to_json(), "votes_stored": votes}, indent=2))
    else:
        print(f"{revealed} Stored; {votes} votes in all (see `leaderboard`).")
    return 0


def _named(arm: str, adapter: str | None) -> str:
    from playground.metrics import NAMES

    return f"{NAMES[arm]} ({adapter})" if adapter else NAMES[arm]


def _read_vote(ask: TextIO, prompt: Callable[[], None]) -> str:
    from playground.votes import Outcome

    for _ in range(VOTE_TRIES):
        prompt()
        line = ask.readline()
        if not line:
            raise UserError("No vote was read (the input ended); nothing was stored.")
        if line.strip().lower() in set(Outcome):
            return line.strip().lower()
        print(f"'{line.strip()}' is not a vote.", file=sys.stderr)
    raise UserError(f"No vote after {VOTE_TRIES} tries; nothing was stored.")
