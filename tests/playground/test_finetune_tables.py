"""What the Fine-tune tab's tables say: dataset counts with units and no nulls, the startup adapter listed first and
protected, and every loss figure named for which loss it is."""

from __future__ import annotations

import json

import pytest

from adapters.jobs.view import JobView
from playground.config import SAMPLE_DATA
from playground.finetune import (
    ADAPTER_HEADERS,
    JOB_HEADERS,
    STARTUP,
    FinetuneService,
    adapter_rows,
    job_rows,
    registered_names,
    stats_rows,
)
from playground.ui.finetune import SERIES, _losses, _progress_html

TRAIN = SAMPLE_DATA / "finetune" / "train.jsonl"


@pytest.fixture(scope="module")
def finetune(runtime):
    service = FinetuneService(runtime)
    yield service
    service.jobs.close()


def _cells(rows: list[list]) -> list[str]:
    return [str(cell) for row in rows for cell in row]


def test_dataset_stats_read_as_a_table_with_units(finetune):
    rows = stats_rows(finetune.validate(TRAIN, max_seq_length=64).stats)
    assert all(len(row) == 2 for row in rows)
    assert not {"None", "null", "nan", ""} & set(_cells(rows))
    table = dict(rows)
    assert table["Examples"] == "458" and table["Problems"] == "0"
    assert table["Length per example, mean (chat template included)"].endswith(" tokens")
    assert "examples: training cuts" in table["Longer than 64 tokens (the max sequence length)"]
    assert table["Duplicates (same question and answer)"] == "none"
    assert table["Example, line 1"].startswith("Q: How much does the Summit 2 tent cost? → A: ")
    # Without a max sequence length, that row is left out rather than shown as empty.
    assert not any(row[0].startswith("Longer than") for row in stats_rows(finetune.validate(TRAIN).stats))


def test_stats_of_a_broken_or_repetitive_file(finetune, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("question,reply\nHi?,Hello.\n")
    assert not {"None", "null", ""} & set(_cells(stats_rows(finetune.validate(bad).stats)))
    twice = tmp_path / "twice.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]})
    twice.write_text(f"{line}\n{line}\n")
    assert dict(stats_rows(finetune.validate(twice).stats))["Duplicates (same question and answer)"] == (
        "1: line 2 repeats line 1"
    )


def test_the_startup_adapter_is_listed_first_and_protected(runtime, finetune):
    startup = runtime.model.adapter
    assert startup and finetune.registry.get(startup) is None  # the demo adapter lives outside the registry
    assert finetune.adapters()[0].name == startup
    first = dict(zip(ADAPTER_HEADERS, adapter_rows(finetune)[0], strict=True))
    assert first["Adapter"] == startup and STARTUP in first["Status"]
    assert first["Steps"] not in {0, "", None} and first["Train loss (smoothed)"] != "–"
    assert "None" not in _cells(adapter_rows(finetune))
    assert startup not in registered_names(finetune)  # Delete, export and push are not offered for it
    with pytest.raises(ValueError, match="started with"):
        finetune.delete(startup)
    with pytest.raises(ValueError, match="No adapter named 'nope'"):
        finetune.delete("nope")


def test_every_loss_figure_says_which_loss_it_is():
    losses = [h for h in JOB_HEADERS + ADAPTER_HEADERS if "loss" in h.lower()]
    assert sorted(set(losses)) == ["Held-out loss", "Train loss (last step)", "Train loss (smoothed)"]
    view = JobView(
        "j1", "voice", "running", "", step=3, total_steps=8, loss=2.5, eval_loss=2.75,
        losses=[(1, 3.0), (3, 2.5)], eval_losses=[(3, 2.75)],
    )  # fmt: skip
    row = dict(zip(JOB_HEADERS, job_rows([view])[0], strict=True))
    assert row["Train loss (last step)"] == "2.5000" and row["Held-out loss"] == "2.7500"
    assert dict(zip(JOB_HEADERS, job_rows([JobView("j2", "v", "queued", "")])[0], strict=True))["Held-out loss"] == "–"
    progress = _progress_html(view)
    assert "train loss (last step) 2.5000" in progress and "held-out loss 2.7500" in progress
    assert set(_losses(view)["series"]) == set(SERIES.values()) == {"train loss (each step)", "held-out loss"}
