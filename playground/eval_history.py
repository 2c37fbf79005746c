"""Stored evaluation runs: `PLAYGROUND_HOME/evaluations/<run id>/` holds `run.json` (settings and summary) and
`rows.csv` (one row per question and arm), so a run can be compared with later ones and cited."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from playground.evaluate import ROW_COLUMNS, EvalReport

logger = logging.getLogger(__name__)

FOLDER = "evaluations"


def rows_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text, in `ROW_COLUMNS` order; an unscored cell is empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ROW_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a file


def save(home: Path, report: EvalReport, owner: str = "") -> Path:
    """Stores `report` under a new run id (its start time and a random suffix) and returns its folder. `owner`: the
    tag of the browser that ran it on a shared demo (see `Roles.tag`), "" for a run everyone here may see."""
    stamp = report.settings["started_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    folder = home / FOLDER / run_id
    folder.mkdir(parents=True)
    report.run_id = run_id
    _write(folder / "rows.csv", rows_csv(report.rows))
    record = report.to_json(with_rows=False) | ({"owner": owner} if owner else {})
    _write(folder / "run.json", json.dumps(record, indent=2) + "\n")
    return folder


def runs(home: Path) -> list[dict[str, Any]]:
    """The stored runs, newest first: id, when, question set, arms, the fact hit rates and the owner's tag."""
    found = []
    for path in sorted((home / FOLDER).glob("*/run.json"), reverse=True):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:  # one damaged run must not hide the others
            logger.warning("skipping the evaluation record %s: %s", path, error)
            continue
        settings = record.get("settings", {})
        found.append(
            {
                "run_id": record.get("run_id", path.parent.name),
                "started_at": settings.get("started_at", ""),
                "questions": settings.get("questions", {}).get("name", ""),
                "count": record.get("questions", 0),
                "arms": ", ".join(settings.get("arms", [])),
                "adapter": settings.get("adapter") or "",
                "fact_hit_rate": record.get("fact_hit_rate", {}),
                "owner": record.get("owner", ""),
            }
        )
    return found


def load(home: Path, run_id: str) -> tuple[dict[str, Any], Path]:
    """A stored run's record and its rows file."""
    folder = home / FOLDER / run_id
    if "/" in run_id or "\\" in run_id or run_id.startswith(".") or not (folder / "run.json").is_file():
        raise UserError(f"No stored evaluation run {run_id!r}.")
    return json.loads((folder / "run.json").read_text(encoding="utf-8")), folder / "rows.csv"
