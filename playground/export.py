"""Exports a person can take away: one comparison as JSON or Markdown, a session's comparisons as CSV, and the
blind arena's vote log as CSV.

Everything here works on the comparison's JSON document (`Comparison.to_json()`, what the API and `compare --json`
give), so a comparison kept in a page's session, one read back from a file and one just made export alike. The
page's files are written to a temporary folder (`write_files`), never into the repository or `PLAYGROUND_HOME`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from pipelines.retrieval_modes import Stage
from playground.metrics import NAMES, TABLE_HEADERS, arm_label
from playground.votes import Vote, VoteLog, now

MAX_SESSION = 200  # comparisons a browser session keeps for its CSV: bounds a shared server's memory
KEEP_S = 3600.0  # a download folder older than this is removed when the next one is made

# The session CSV: one row per comparison and arm that was asked.
COMPARISON_COLUMNS = (
    "comparison",  # 1, 2, … in the order they finished in this session
    "time",  # when it finished, ISO 8601 UTC
    "question",
    "arm",  # base, rag, finetuned or hybrid
    "adapter",  # the LoRA adapter that answered (fine-tuned and hybrid arms)
    "answer",
    "error",  # why the arm could not answer; its figures are then empty
    "retrieval_s",
    "prefill_s",
    "ttft_s",
    "latency_s",
    "tokens_per_s",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "summary",  # the plain comparison sentence, the same on each of the comparison's rows
    "base_model",
    "model_source",  # hub, local or demo
    "top_k",
    "retrieval_mode",
    "rerank",
    "files",  # the file filter, ';'-separated; empty: all files
    "chunk_sources",  # the retrieved chunks' sources in rank order, ';'-separated
    "max_new_tokens",
    "temperature",
    "top_p",
    "seed",
    "timing",  # how the arms ran side by side: interleaved, sequential or batched
    "total_s",  # the whole comparison, wall clock
)
FIGURES = ("retrieval_s", "prefill_s", "ttft_s", "latency_s", "tokens_per_s", "prompt_tokens", "completion_tokens")

# The vote-log CSV: every field of a stored vote; `settings` (base model, decoding, retrieval, timing) as JSON text.
VOTE_COLUMNS = (
    "time",
    "question",
    "arm_a",
    "adapter_a",
    "arm_b",
    "adapter_b",
    "vote",  # a, b, tie or both_bad; a is the answer shown first (left)
    "answer_a",
    "answer_b",
    "base_model",
    "model_source",
    "settings",
)


def comparison_json(document: Mapping[str, Any]) -> str:
    """The comparison document as indented JSON text (non-ASCII kept as it is)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- Markdown --------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A table cell: a pipe or a line break inside the value would end the cell or the row."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _fenced(text: str) -> str:
    """`text` verbatim in a code block whose fence is longer than any run of backticks inside it."""
    text = text.replace("\r\n", "\n")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _number(value: Any, digits: int) -> str:
    return "" if value is None else f"{float(value):.{digits}f}"


def _arms(document: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The arms that were asked, in pane order, with their answer (or error) record."""
    answers = document.get("answers") or {}
    order = [*NAMES, *(name for name in answers if name not in NAMES)]
    return [(name, answers[name]) for name in order if answers.get(name)]


def _stage_label(key: str) -> str:
    return {stage.value: stage.label for stage in Stage}.get(key, key)


def _settings_rows(document: Mapping[str, Any]) -> list[list[Any]]:
    model = document.get("model") or {}
    decoding = document.get("decoding") or {}
    retrieval = document.get("retrieval") or {}
    timing = document.get("timing") or {}
    base = f"{model.get('base', '')} ({model.get('source', '')})"
    rows = [["base model", base]]
    if model.get("note"):
        rows.append(["where it came from", model["note"]])
    rows.append(["LoRA adapter (fine-tuned, hybrid)", model.get("adapter") or "none"])
    rows.append(["decoding", ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in decoding.items())])
    files = ", ".join(retrieval.get("files") or ()) or "all"
    rows.append(
        [
            "retrieval",
            f"top-k {retrieval.get('top_k', '')}, mode {retrieval.get('mode', '')}, "
            f"rerank {'on' if retrieval.get('rerank') else 'off'}, files {files}",
        ]
    )
    rows.append(["timing", " — ".join(part for part in (timing.get("strategy"), timing.get("note")) if part)])
    rows.append(["retrieval time (s)", _number(document.get("retrieval_s"), 3)])
    rows.append(["whole comparison (s)", _number(document.get("total_s"), 3)])
    if document.get("time"):
        rows.append(["finished", document["time"]])
    return rows


def _chunk_head(rank: int, chunk: Mapping[str, Any], stages: Sequence[str]) -> str:
    """A heading like `### [1] tents.md · score 0.500 · BM25 7.800`: one line, the source in a code span without
    backticks."""
    scores = chunk.get("scores") or {}
    shown = [f"{_stage_label(key)} {_number(scores.get(key), 3) or '–'}" for key in stages]
    if chunk.get("score") is not None:
        shown.insert(0, f"score {_number(chunk['score'], 3)}")
    private = " (your upload)" if chunk.get("private") else ""
    source = " ".join(str(chunk.get("source", "")).split()).replace("`", "'")
    return f"### [{rank}] `{source}`{private} · " + " · ".join(shown)


def comparison_markdown(document: Mapping[str, Any]) -> str:
    """A readable report: the question, the settings, a table of figures per arm, each answer and the chunks."""
    lines = ["# Comparison", "", "## Question", "", _fenced(str(document.get("question", ""))), ""]
    lines += ["## Settings", "", _row(["setting", "value"]), _row(["---", "---"])]
    lines += [_row(row) for row in _settings_rows(document)]
    arms = _arms(document)
    lines += ["", "## Figures per arm", ""]
    if document.get("summary"):
        lines += [f"**{document['summary']}**", ""]
    lines += [_row([*TABLE_HEADERS, "finish reason"]), _row(["---"] * (len(TABLE_HEADERS) + 1))]
    for name, answer in arms:
        label = arm_label(name, answer.get("adapter"))
        if "error" in answer:
            lines.append(_row([label, *([""] * (len(TABLE_HEADERS) - 1)), "could not answer"]))
            continue
        figures = [_number(answer.get(key), 3) for key in ("retrieval_s", "prefill_s", "ttft_s", "latency_s")]
        tokens = [answer.get("prompt_tokens"), answer.get("completion_tokens")]
        lines.append(
            _row([label, *figures, _number(answer.get("tokens_per_s"), 1), *tokens, answer.get("finish_reason")])
        )
    lines += ["", "## Answers"]
    for name, answer in arms:
        lines += ["", f"### {_cell(arm_label(name, answer.get('adapter')))}", ""]
        if "error" in answer:
            lines += ["Could not answer:", "", _fenced(str(answer["error"]))]
        else:
            lines.append(_fenced(str(answer.get("text", ""))))
    chunks = document.get("chunks") or []
    stages = (document.get("retrieval") or {}).get("stages") or []
    lines += ["", "## Retrieved chunks (what RAG and the hybrid read)", ""]
    if not chunks:
        lines += ["No chunks were retrieved.", ""]
    for rank, chunk in enumerate(chunks, start=1):
        lines += [_chunk_head(rank, chunk, stages), "", _fenced(str(chunk.get("content", ""))), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- CSV -------------------------------------------------------------------------------------------------------


def _csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV text, a cell quoted when it holds a comma, a quote or a line break (as `eval_history.rows_csv`); None is
    empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: ("" if value is None else value) for key, value in row.items()} for row in rows)
    return out.getvalue()


def comparison_rows(document: Mapping[str, Any], number: int = 1) -> list[dict[str, Any]]:
    """One row per arm asked, in `COMPARISON_COLUMNS` order."""
    model = document.get("model") or {}
    decoding = document.get("decoding") or {}
    retrieval = document.get("retrieval") or {}
    shared = {
        "comparison": number,
        "time": document.get("time", ""),
        "question": document.get("question", ""),
        "summary": document.get("summary", ""),
        "base_model": model.get("base", ""),
        "model_source": model.get("source", ""),
        "top_k": retrieval.get("top_k"),
        "retrieval_mode": retrieval.get("mode", ""),
        "rerank": retrieval.get("rerank"),
        "files": ";".join(retrieval.get("files") or ()),
        "chunk_sources": ";".join(chunk.get("source", "") for chunk in document.get("chunks") or ()),
        **{key: decoding.get(key) for key in ("max_new_tokens", "temperature", "top_p", "seed")},
        "timing": (document.get("timing") or {}).get("strategy", ""),
        "total_s": document.get("total_s"),
    }
    rows = []
    for name, answer in _arms(document):
        row = shared | {"arm": name, "adapter": answer.get("adapter") or "", "error": answer.get("error", "")}
        row |= {"answer": answer.get("text", ""), "finish_reason": answer.get("finish_reason", "")}
        row |= {key: answer.get(key) for key in FIGURES}
        rows.append({column: row.get(column) for column in COMPARISON_COLUMNS})
    return rows


def comparisons_csv(documents: Sequence[Mapping[str, Any]]) -> str:
    """A session's comparisons: one row per comparison and arm."""
    rows = [row for number, doc in enumerate(documents, start=1) for row in comparison_rows(doc, number)]
    return _csv(COMPARISON_COLUMNS, rows)


def vote_row(vote: Vote) -> dict[str, Any]:
    record = vote.to_json()
    settings = record.pop("settings") or {}
    return record | {
        "base_model": settings.get("base_model", ""),
        "model_source": settings.get("model_source", ""),
        "settings": json.dumps(settings, ensure_ascii=False, sort_keys=True),
    }


def votes_csv(votes: Sequence[Vote]) -> str:
    """The vote log (the votes that parse), one row per vote in `VOTE_COLUMNS` order."""
    return _csv(VOTE_COLUMNS, [vote_row(vote) for vote in votes])


# --- the session's list and the files a browser downloads ------------------------------------------------------


def default_root() -> Path:
    """Where the page's download files go: the system's temporary folder, never the repository."""
    return Path(tempfile.gettempdir()) / "playground-exports"


def remember(kept: Sequence[Mapping[str, Any]] | None, document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A new list: the session's comparisons with `document` last, stamped with the time it finished (unless it
    has one); the oldest dropped past `MAX_SESSION`."""
    return [*(dict(doc) for doc in (kept or ())), {**document, "time": document.get("time") or now()}][-MAX_SESSION:]


def write_files(root: Path, contents: Mapping[str, str | bytes], keep_s: float = KEEP_S) -> dict[str, Path]:
    """Writes each name → content to a new folder under `root` and returns name → path. Folders older than `keep_s`
    are removed first: the web server has copied what it serves by then, so nothing piles up."""
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - keep_s
    for old in root.iterdir():
        try:
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # another session removed it first
            continue
    folder = root / secrets.token_hex(8)
    folder.mkdir()
    paths = {}
    for name, content in contents.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")  # a CSV cell's line breaks stay as written
        paths[name] = path
    return paths


def comparison_files(
    document: Mapping[str, Any] | None, kept: Sequence[Mapping[str, Any]] | None, root: Path
) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """The session's list with the finished comparison `document` added, and its files: the comparison as JSON
    (`.json`) and Markdown (`.md`), and the session's comparisons as CSV (`.csv`)."""
    if document is None:
        raise UserError("Ask a question first: there is no finished comparison to export.")
    kept = remember(kept, document)
    latest = kept[-1]
    stamp = re.sub(r"[^0-9T]", "", str(latest["time"]).split("+")[0]) + "Z"  # 2026-11-30T13:02:00 → 20261130T130200Z
    paths = write_files(
        root,
        {
            f"comparison-{stamp}.json": comparison_json(latest),
            f"comparison-{stamp}.md": comparison_markdown(latest),
            f"comparisons-{stamp}.csv": comparisons_csv(kept),
        },
    )
    by_kind = {path.suffix.lstrip("."): path for path in paths.values()}
    return kept, by_kind


def vote_log_files(log: VoteLog, root: Path) -> dict[str, Path]:
    """The vote log as stored (`jsonl`, damaged lines too) and its votes as CSV (`csv`); empty before any vote."""
    if not log.path.is_file():
        return {}
    stored = log.read()
    paths = write_files(root, {"votes.jsonl": log.path.read_bytes(), "votes.csv": votes_csv(stored.votes)})
    return {path.suffix.lstrip("."): path for path in paths.values()}
