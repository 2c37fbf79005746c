"""The API beside the page: one named Gradio endpoint per action, for scripts and notebooks (`gradio_client`).

Each endpoint calls the same service as the page and answers plain JSON. A caller's uploads and fine-tunes belong to
a workspace, named by the token that `upload` returns (a fresh one when none is given): pass it back to see and
manage them; another caller's token is never guessed or listed. The comparison itself is `compare`
(playground.ui.compare). On a shared demo, API callers are visitors: the owner's actions stay on the page.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.context import get_blocks_context
from gradio.utils import get_upload_folder

from adapters.errors import UserError
from adapters.jobs.view import JobView
from playground.advisor import AdvisorService
from playground.advisor_rules import Answers
from playground.arena import ArenaService
from playground.compare import ROW_NAMES, CompareOptions
from playground.documents import TABLE_HEADERS, DocumentsService
from playground.eval_service import EvaluateService
from playground.evaluate import EvalReport
from playground.finetune import FinetuneService
from playground.freshness import FreshnessService
from playground.load import COMPARE_GROUP
from playground.ui.errors import shows_errors

FILE_ROW = [header.lower() for header in TABLE_HEADERS]  # file, status, pages, characters, chunks, message


def _uploads() -> Path:
    """Where the server puts uploaded files (the workspaces' upload cache while `playground serve` runs)."""
    return Path(get_upload_folder()).resolve()


def _path(item: Any) -> Path:
    """An uploaded file as `gradio_client.handle_file` sends it (Gradio has put it in its upload folder): its path
    there. Anything else is refused: a path given as text could name any file of the server."""
    path = item.get("path") if isinstance(item, dict) else None
    if not path or not Path(path).resolve().is_relative_to(_uploads()):
        raise UserError("Send each file with gradio_client.handle_file(path): it is uploaded first, then used.")
    return Path(path)


def _job(view: JobView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "state": view.state,
        "step": view.step,
        "total_steps": view.total_steps,
        "loss": view.loss,
        "eval_loss": view.eval_loss,
        "tokens_per_s": view.tokens_per_s,
        "eta_s": view.eta_s,
        "backend": view.backend,
        "adapter": view.adapter,
        "error": view.error,
        "queue_position": view.queue_position,
        "checkpoint_step": view.checkpoint_step,
    }


def build(
    documents: DocumentsService,
    finetune: FinetuneService,
    arena: ArenaService,
    advisor: AdvisorService,
    evaluate: EvaluateService,
    freshness: FreshnessService,
) -> None:
    """Registers the endpoints on the Blocks being built."""

    def rows(workspace: str) -> list[dict[str, Any]]:
        return [dict(zip(FILE_ROW, row, strict=True)) for row in documents.table(documents.workspace(workspace))]

    @shows_errors
    def upload(files: list[dict], workspace: str = "") -> dict:
        """Index files (txt, md, pdf, docx, html, csv, json) into the caller's workspace; retrieval in `compare`
        reads them when the same token is passed as its `workspace`. Returns the token, the workspace's files and
        what this upload did."""
        paths = [_path(item) for item in files or []]
        opened = documents.workspace(workspace or None)
        done = documents.add(opened.id, paths, cache=_uploads())
        return {"workspace": opened.id, "files": rows(opened.id), "message": done.message}

    @shows_errors
    def list_documents(workspace: str) -> list[dict]:
        """The caller's uploaded files with their status and chunks."""
        return rows(_token(workspace))

    @shows_errors
    def delete_document(workspace: str, file: str) -> dict:
        """Remove one uploaded file and its chunks from the caller's workspace."""
        removed, _ = documents.delete(_token(workspace), file)
        return {"deleted_chunks": removed, "files": rows(workspace)}

    @shows_errors
    def list_adapters(workspace: str = "") -> list[dict]:
        """The LoRA adapters the caller may use: published ones and those its workspace trained."""
        caller = finetune.roles.caller(workspace or None)
        keep = ("name", "base_model", "status", "backend", "steps", "train_loss", "eval_loss", "created", "dataset")
        return [{key: record[key] for key in keep} for record in map(asdict, finetune.adapters(caller))]

    @shows_errors
    def finetune_start(
        dataset: dict, name: str = "", preset: str = "quick demo", max_steps: int | None = None, workspace: str = ""
    ) -> dict:
        """Launch a LoRA fine-tune on the loaded base model from a dataset file (chat JSONL, Alpaca, ShareGPT or
        CSV, sent with handle_file); returns the job, whose id `finetune_status` follows."""
        fit = {"max_steps": int(max_steps)} if max_steps else {}
        view = finetune.launch(_path(dataset), name, preset, fit=fit, caller=finetune.roles.caller(workspace or None))
        return _job(view)

    @shows_errors
    def finetune_status(job: str, workspace: str = "") -> dict:
        """A fine-tune's state, step, losses and, once done, its adapter's name. On a shared demo, only of a job
        launched with this `workspace` token."""
        return _job(finetune.status(job, finetune.roles.caller(workspace or None)))

    @shows_errors
    def finetune_cancel(workspace: str = "", job: str = "") -> str:
        """Stop the fine-tune `job`, or else the running (or next) one launched from this workspace; its adapter is
        kept, incomplete."""
        return finetune.cancel(finetune.roles.caller(workspace or None), job or None)

    @shows_errors
    def evaluate_questions(
        questions: dict | None = None,
        limit: int = 0,
        arms: list[str] | None = None,
        adapter: str | None = None,
        top_k: int | None = None,
        retrieval: str | None = None,
        rerank: bool = False,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        workspace: str = "",
    ) -> dict:
        """Score the arms over a question set (a CSV or JSONL file sent with handle_file; default: the sample set,
        `limit` questions of it, 0 for all): per arm every metric's mean with its 95 % interval, the findings, and
        one row per question and arm. Stored in the history as on the page."""
        chosen = evaluate.questions(str(_path(questions)) if questions else None, int(limit or 0))
        options = CompareOptions.requested(
            arms, adapter, top_k, retrieval, rerank, None, max_new_tokens, temperature, seed, None, workspace
        )
        report = next(step for step in evaluate.run(evaluate.start(), chosen, options) if isinstance(step, EvalReport))
        return report.to_json()

    @shows_errors
    def freshness_drill(
        file: str = "",
        old: str = "",
        new: str = "",
        questions: list[str] | None = None,
        retrain: bool = False,
        max_new_tokens: int | None = None,
        adapter: str | None = None,
        workspace: str = "",
    ) -> dict:
        """A fact changes in a private copy of one shared document (default: the guided drill's): whether RAG and the
        hybrid read the new fact at once, whether the adapter alone still says the old one, and with `retrain` a
        timed re-fine-tune on the changed data. Every part left out is the guided drill's."""
        guided = freshness.guided()
        change = replace(
            guided,
            source=file or guided.source,
            old=old or guided.old,
            new=new or guided.new,
            questions=tuple(questions) if questions else guided.questions,
        )
        options = CompareOptions.requested(adapter=adapter, max_new_tokens=max_new_tokens, workspace=workspace)
        return freshness.run(change, options, bool(retrain)).to_json()

    @shows_errors
    def arena_match(
        question: str,
        arms: list[str] | None = None,
        adapter: str | None = None,
        max_new_tokens: int | None = None,
        workspace: str = "",
    ) -> dict:
        """Two arms drawn at random answer as A and B, unnamed; vote on the returned `match` with `vote`, which
        names them."""
        options = CompareOptions.requested(adapter=adapter, max_new_tokens=max_new_tokens, workspace=workspace)
        with closing(arena.play(question, options, tuple(arms or ROW_NAMES))) as matches:
            *_, found = matches
        if found.error:
            raise UserError(f"One of the arms could not answer: {found.error}")
        return {"match": arena.hold(found), "question": found.question, "a": found.answer_a, "b": found.answer_b}

    @shows_errors
    def vote(match: str, outcome: str) -> dict:
        """Store a vote on a match `arena_match` returned: outcome a, b, tie or both_bad. Answers who A and B were."""
        cast = arena.vote_held(match, outcome)
        keep = ("vote", "arm_a", "arm_b", "adapter_a", "adapter_b", "question", "time")
        record = cast.to_json()
        return {key: record[key] for key in keep}

    @shows_errors
    def leaderboard() -> dict:
        """The blind arena's Bradley–Terry ratings with 95 % intervals, from every vote stored."""
        return arena.leaderboard().to_json()

    @shows_errors
    def advise(
        changes: str = "sometimes",
        latency: str = "interactive",
        volume: str = "medium",
        style: str = "little",
        citations: bool = False,
        budget: str = "some",
        offline: bool = False,
        run: str = "",
        workspace: str = "",
    ) -> dict:
        """RAG, fine-tuning or the hybrid for a use case, with the reasons and what was measured here: the evaluation
        run `run` (default: the latest), the latest freshness drill and the arena's votes. On a shared demo only the
        runs and drills made with this `workspace` token are cited."""
        answers = Answers(changes, latency, volume, style, bool(citations), budget, bool(offline))
        return advisor.advise(answers, run or None, workspace or None).to_json()

    names = {evaluate_questions: "evaluate", freshness_drill: "freshness", arena_match: "arena"}
    # How many calls of an endpoint run at once. Uploads embed on the CPU beside the comparisons: two at a time. The
    # arena's answers share the comparisons' slots and bounded wait; evaluations and drills run one at a time, as on
    # the page (they keep the engine busy for minutes). The rest answer at once.
    comparing = {"concurrency_limit": arena.compare.setup().concurrency, "concurrency_id": COMPARE_GROUP}
    one_at_a_time = {"concurrency_limit": 1, "concurrency_id": "evaluate"}
    slots = {upload: {"concurrency_limit": 2}, arena_match: comparing}
    slots |= {evaluate_questions: one_at_a_time, freshness_drill: one_at_a_time}
    endpoints = (
        upload, list_documents, delete_document, list_adapters, finetune_start, finetune_status, finetune_cancel,
        evaluate_questions, freshness_drill, arena_match, vote, leaderboard, advise,
    )  # fmt: skip
    for fn in endpoints:
        gr.api(fn, api_name=names.get(fn, fn.__name__), **slots.get(fn, {"concurrency_limit": None}))
    taken = {block.api_name for block in get_blocks_context().fns.values() if block.fn not in endpoints}
    if clash := taken & {names.get(fn, fn.__name__) for fn in endpoints}:  # Gradio would rename ours: names stay
        raise RuntimeError(f"page events took the API names {sorted(clash)}: give those events other names")


def _token(workspace: str) -> str:
    if not workspace:
        raise UserError("Pass the workspace token that `upload` returned.")
    return workspace
