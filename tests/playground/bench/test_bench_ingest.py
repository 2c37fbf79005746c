"""`python -m playground bench ingest --json`: every figure is there and adds up; speed is for the bench."""

from __future__ import annotations

import json
import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import playground.bench.ingest as bench
import playground.bench.retrieval as retrieval
from pipelines.fast_store import FastDocumentStore
from playground.__main__ import main

KEYS = {
    "chunks",
    "files",
    "chunk_tokens",
    "chunk_overlap",
    "batch_size",
    "ingest_chunks_per_s",
    "raw_encode_chunks_per_s",
    "ratio",
    "target_ratio",
    "meets_target",
    "round_ratios",
    "ingest_s",
    "raw_encode_s",
    "convert_split_s",
    "convert_s",
    "split_s",
    "embed_s",
    "write_s",
}


def test_bench_ingest_prints_consistent_figures(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    stores: list[FastDocumentStore] = []

    class RecordedStore(FastDocumentStore):
        def __init__(self) -> None:
            super().__init__()
            stores.append(self)

    monkeypatch.setattr(bench, "FastDocumentStore", RecordedStore)
    assert main(["bench", "ingest", "--chunks", "12", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert set(report) == KEYS
    assert report["chunks"] == stores[-1].count_documents() > 0
    assert report["files"] == len({doc.meta["file_path"] for doc in stores[-1].filter_documents()})
    assert report["ingest_chunks_per_s"] > 0 and report["raw_encode_chunks_per_s"] > 0
    expected = report["ingest_chunks_per_s"] / report["raw_encode_chunks_per_s"]
    assert report["ratio"] == pytest.approx(expected, rel=0.01)
    assert report["ratio"] == pytest.approx(report["raw_encode_s"] / report["ingest_s"], rel=0.01)
    assert report["target_ratio"] == 0.85
    assert report["meets_target"] == (report["ratio"] >= 0.85)
    assert report["round_ratios"] and all(ratio > 0 for ratio in report["round_ratios"])
    phases = [report[key] for key in ("convert_s", "split_s", "embed_s", "write_s")]
    assert all(seconds >= 0 for seconds in phases) and report["embed_s"] > 0
    assert report["convert_split_s"] == pytest.approx(report["convert_s"] + report["split_s"], abs=0.002)
    assert sum(phases) <= report["ingest_s"] + 0.005


def test_chunks_default_depends_on_the_target(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    asked: dict[str, int] = {}

    def fake_ingest(chunks: int) -> dict[str, int]:
        asked["ingest"] = chunks
        return {}

    def fake_retrieval(chunks: int, queries: int) -> dict[str, int]:
        asked["retrieval"] = chunks
        return {}

    monkeypatch.setattr(bench, "run_ingest_bench", fake_ingest)
    monkeypatch.setattr(retrieval, "run_retrieval_bench", fake_retrieval)
    assert main(["bench", "ingest", "--json"]) == 0
    assert main(["bench", "retrieval", "--json"]) == 0
    capsys.readouterr()
    assert asked == {"ingest": bench.DEFAULT_CHUNKS, "retrieval": 100_000}
