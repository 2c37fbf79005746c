"""The freshness drill: fine-tuning makes knowledge static, retrieval does not — measured.

A fact in one document changes (in a private copy: the shared knowledge base is never modified). RAG learns it by
re-indexing that one file; the adapter, trained before the change, still says the old fact. The drill times the
re-index, asks the probe questions in every arm, then re-fine-tunes on the fine-tuning set with the same change
(the quick preset, as a user would) and times that too, so the two ways of learning the change stand side by side.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from adapters.files import atomic_write_json
from playground.compare import ROW_NAMES, CompareOptions, CompareService
from playground.metrics import LABELS
from playground.questions import load_questions
from playground.roles import Roles

logger = logging.getLogger(__name__)

FOLDER = "freshness"  # every drill's report, one JSON file each, under PLAYGROUND_HOME


@dataclass(frozen=True)
class Change:
    source: str  # a file of the shared knowledge base
    old: str  # the fact as the file states it
    new: str  # what it becomes
    questions: tuple[str, ...]  # asked before nothing else: each one's answer should hold the fact


# The guided drill: a price, which both the documents and the fine-tuning set teach. The price list states it too and
# keeps the old one, as a stale copy would; the report names the files retrieval read. (The return window, the
# guided change before, is stated in three documents and in a sentence the offline demo model misquotes.)
GUIDED = Change(
    source="glacier-15-sleeping-bag.md",
    old="$319",
    new="$339",
    questions=("How much is a Regular length Glacier 15 down mummy bag?",),
)


@dataclass
class Answer:
    arm: str
    adapter: str
    text: str
    new: bool  # holds the new fact
    old: bool  # still holds the old one


@dataclass
class FreshnessReport:
    change: dict[str, Any]
    reindex_s: float  # re-indexing the changed file: how long RAG took to learn the change
    answers: list[dict[str, Any]] = field(default_factory=list)  # per question and arm, after the change
    retrieved: list[dict[str, Any]] = field(default_factory=list)  # per question: the files read, the new fact in them?
    refinetune: dict[str, Any] = field(default_factory=dict)  # adapter, seconds (job, training), its answers
    seconds: float = 0.0

    @property
    def sentence(self) -> str:
        new, old = self.change["new"], self.change["old"]
        parts = [f"After {self.change['source']} changed from {old} to {new}"]
        for arm in ROW_NAMES:
            mine = [a for a in self.answers if a["arm"] == arm]
            if not mine:
                continue
            said_new = sum(a["new"] for a in mine)
            said_old = sum(a["old"] and not a["new"] for a in mine)
            parts.append(
                f"{LABELS[arm]} gave the new fact in {said_new} of {len(mine)} answers (the old in {said_old})"
            )
        text = "; ".join(parts) + f". RAG learned the change by re-indexing one file in {self.reindex_s:.2f} s"
        tuned = self.refinetune
        if tuned.get("adapter"):
            right = sum(a["new"] for a in tuned["answers"])
            text += (
                f"; a re-fine-tune on the updated data (preset {tuned['preset']}) took {tuned['job_s']:.0f} s in all "
                f"({tuned['training_s']:.0f} s training), and the new adapter gave the new fact in {right} of "
                f"{len(tuned['answers'])} answers"
            )
        elif tuned.get("error"):
            text += f"; the re-fine-tune failed: {tuned['error']}"
        return text + "."

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sentence": self.sentence}


def guided_change(eval_data: Path) -> Change:
    """The guided change, its probe questions taken from the question set (those the old fact answers)."""
    try:
        items = load_questions(eval_data).items
    except UserError:
        return GUIDED
    asked = tuple(i.question for i in items if i.source == GUIDED.source and i.fact == GUIDED.old)
    return replace(GUIDED, questions=asked or GUIDED.questions)


def changed_copy(text: str, change: Change, where: str) -> tuple[str, int]:
    """`text` with every whole occurrence of the old fact replaced; refuses a change that changes nothing."""
    if not change.old.strip() or not change.new.strip():
        raise UserError("Give both the fact as the file states it and what it becomes.")
    if change.old == change.new:
        raise UserError("The new fact is the old one: nothing would change.")
    pattern = re.compile(rf"(?<!\w){re.escape(change.old)}(?!\w)")
    changed, count = pattern.subn(change.new, text)
    if not count:
        raise UserError(f"{where} does not contain {change.old!r}; pick a fact the file states word for word.")
    return changed, count


def changed_dataset(path: Path, change: Change, out: Path) -> int:
    """The fine-tuning set (chat JSONL) with the same change in every message; returns the messages changed."""
    changed = 0
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        record = json.loads(raw)
        for message in record.get("messages", []):
            content = message.get("content", "")
            if isinstance(content, str) and change.old in content:
                message["content"], count = changed_copy(content, change, path.name)
                changed += count > 0
        lines.append(json.dumps(record))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


Refinetune = Callable[[Path, str], dict[str, Any]]  # (data, adapter name) → {adapter, job_s, training_s, preset}


class FreshnessService:
    def __init__(self, compare: CompareService, refinetune: Refinetune | None = None) -> None:
        """`refinetune` trains an adapter on a dataset and returns its figures (None: the drill does not re-train)."""
        self.compare = compare
        self.runtime = compare.runtime
        self.refinetune = refinetune

    def guided(self) -> Change:
        return guided_change(self.runtime.settings.eval_data)

    def run(
        self,
        change: Change,
        options: CompareOptions = CompareOptions(),
        retrain: bool = True,
        progress: Callable[[str], None] = lambda _: None,
    ) -> FreshnessReport:
        started = time.perf_counter()
        settings = self.runtime.settings
        source = settings.knowledge_base / change.source
        if change.source not in self.runtime.shared_sources or not source.is_file():
            raise UserError(f"{change.source} is not a file of the shared knowledge base.")
        questions = tuple(q.strip() for q in change.questions if q.strip())
        if not questions:
            raise UserError("Give at least one question whose answer is the changed fact.")
        text, count = changed_copy(source.read_text(encoding="utf-8"), change, change.source)
        scratch = Path(tempfile.mkdtemp(prefix="freshness-"))
        workspaces = self.runtime.workspaces
        workspace = workspaces.open(None)  # a private store of its own, dropped at the end
        try:
            copy = scratch / f"{source.stem}-updated{source.suffix}"
            copy.write_text(text, encoding="utf-8")
            progress(f"re-indexing {copy.name}")
            indexing = time.perf_counter()
            reports = workspaces.upload(workspace, [copy])
            reindex_s = time.perf_counter() - indexing
            if reports[0].error:
                raise UserError(f"{copy.name} could not be indexed: {reports[0].error}")
            # Retrieval reads the changed copy instead of the shared original.
            files = tuple(name for name in self.compare.sources(workspace.id) if name != change.source)
            asked = replace(options, arms=ROW_NAMES, workspace=workspace.id, files=files)
            report = FreshnessReport(
                {**asdict(change), "questions": list(questions), "occurrences": count, "copy": copy.name}, reindex_s
            )
            for index, question in enumerate(questions, start=1):
                progress(f"asking {index}/{len(questions)}")
                self._ask(question, asked, change, report)
            if retrain and self.refinetune is not None:
                progress("re-fine-tuning on the updated data")
                report.refinetune = self._retrain(change, questions, options, scratch)
        finally:
            for name in workspace.files():
                workspaces.delete(workspace, name)
            shutil.rmtree(scratch, ignore_errors=True)
        report.seconds = round(time.perf_counter() - started, 1)
        try:
            save(settings.home, report, Roles(settings).tag(options.workspace))
        except OSError as error:  # the drill's answer still reaches the user; only its record is lost
            logger.warning("could not store the freshness report: %s", error)
        return report

    def _ask(self, question: str, options: CompareOptions, change: Change, report: FreshnessReport) -> None:
        state = self.compare.compare(question, options)
        report.retrieved.append(
            {
                "question": question,
                "sources": [chunk["source"] for chunk in state.chunks],
                "new_fact_read": any(_holds(chunk["content"], change.new) for chunk in state.chunks),
            }
        )
        for arm in state.rows:
            text = state.texts.get(arm, "")
            answer = Answer(
                arm, state.adapters.get(arm) or "", text, _holds(text, change.new), _holds(text, change.old)
            )
            report.answers.append(asdict(answer) | {"question": question})

    def _retrain(
        self, change: Change, questions: tuple[str, ...], options: CompareOptions, scratch: Path
    ) -> dict[str, Any]:
        data = scratch / "finetune-updated.jsonl"
        changed = changed_dataset(self.runtime.settings.finetune_data, change, data)
        try:
            assert self.refinetune is not None
            trained = self.refinetune(data, "freshness-drill")
        except UserError as error:
            return {"error": str(error), "messages_changed": changed}
        answers = []
        for question in questions:
            state = self.compare.compare(question, replace(options, arms=("finetuned",), adapter=trained["adapter"]))
            text = state.texts.get("finetuned", "")
            answers.append({"question": question, "text": text, "new": _holds(text, change.new)})
        return {**trained, "messages_changed": changed, "answers": answers}


def save(home: Path, report: FreshnessReport, owner: str = "") -> Path:
    """Stores the report as `<UTC time>-<random>.json` under `home/freshness/` (so the advisor can cite it). `owner`:
    as for an evaluation run (see `Roles.tag`)."""
    finished = datetime.now(UTC)
    path = home / FOLDER / f"{finished:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}.json"
    record = {**report.to_json(), "finished_at": finished.isoformat(timespec="seconds")}
    record |= {"owner": owner} if owner else {}
    return atomic_write_json(path, record, indent=2)


def latest(home: Path, visible: Callable[[str], bool] = lambda owner: True) -> dict[str, Any] | None:
    """The newest stored report whose owner's tag is `visible`, with its file's name under "file"; None when no
    such drill has run."""
    for path in sorted((home / FOLDER).glob("*.json"), reverse=True):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:  # one damaged report must not hide the one before it
            logger.warning("skipping the freshness report %s: %s", path, error)
            continue
        if isinstance(record, dict):
            if visible(record.get("owner", "")):
                return {**record, "file": path.name}
            continue
        logger.warning("skipping the freshness report %s: not a JSON object", path)
    return None


def _holds(text: str, fact: str) -> bool:
    return " ".join(fact.lower().split()) in " ".join((text or "").lower().split())
