"""Indexing throughput against raw sentence-transformers encoding of the same chunks, both measured in one run.

`python -m playground bench ingest [--chunks 600] --json` prints the figures. The files are made from the sample
knowledge base (paragraphs drawn at random, so no two files are alike) in six formats, and go through the product
path: read, convert, split, embed, write.
"""

from __future__ import annotations

import csv
import html
import io
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adapters.errors import UserError
from pipelines.embedder import EmbedderInfo, resolve_embedder
from pipelines.fast_store import FastDocumentStore
from pipelines.indexing import ChunkSettings
from pipelines.ingest import FileReport, ingest_files, loaded_embedder
from playground.config import SAMPLE_DATA

TARGET_RATIO = 0.85
DEFAULT_CHUNKS = 600  # about two minutes on a 2-core CPU, ingest and baseline together
CHUNKS_PER_FILE = 5
CHARS_PER_CHUNK = 800  # sample-data text per chunk at 254 tokens with a 50-token overlap (measured)
WARM_UP_TEXTS = 8
# Ingest and baseline take turns every ~2 embedding batches: on a shared machine the load changes within seconds.
ROUND_CHUNKS = 64


def sample_paragraphs(folder: Path = SAMPLE_DATA / "knowledge_base") -> list[str]:
    """The knowledge base's paragraphs (blocks between blank lines), headings included."""
    paragraphs = []
    for path in sorted(folder.glob("*")):
        if path.suffix in (".md", ".txt"):
            paragraphs += [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return paragraphs


def _markdown(title: str, paragraphs: list[str]) -> bytes:
    return "\n\n".join([f"# {title}", *paragraphs]).encode()


def _text(title: str, paragraphs: list[str]) -> bytes:
    return "\n\n".join([title, *paragraphs]).encode()


def _html(title: str, paragraphs: list[str]) -> bytes:
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs)
    page = f"<html><head><title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>\n{body}"
    return (page + "</body></html>").encode()


def _csv(title: str, paragraphs: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["document", "section", "text"])
    writer.writerows([title, index, p] for index, p in enumerate(paragraphs))
    return out.getvalue().encode()


def _json(title: str, paragraphs: list[str]) -> bytes:
    sections = [{"section": index, "text": p} for index, p in enumerate(paragraphs)]
    return json.dumps({"title": title, "sections": sections}, indent=1).encode()


def _docx(title: str, paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


WRITERS: dict[str, Callable[[str, list[str]], bytes]] = {
    ".md": _markdown,
    ".txt": _text,
    ".html": _html,
    ".csv": _csv,
    ".json": _json,
    ".docx": _docx,
}


def write_corpus(folder: Path, chunks: int, seed: int = 0, per_file: int = CHUNKS_PER_FILE) -> list[Path]:
    """Files that split into about `chunks` chunks, formats taken in turn, each with its own paragraphs."""
    rng = np.random.default_rng(seed)
    pool = sample_paragraphs()
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(max(1, round(chunks / per_file))):
        left = chunks - index * per_file  # the last file takes what is left
        budget = CHARS_PER_CHUNK * max(1, min(per_file, left))
        paragraphs: list[str] = []
        while sum(map(len, paragraphs)) < budget:
            paragraphs.append(pool[int(rng.integers(len(pool)))])
        suffix = list(WRITERS)[index % len(WRITERS)]
        path = folder / f"notes-{index:05d}{suffix}"
        path.write_bytes(WRITERS[suffix](f"Pinecrest notes {index}", paragraphs))
        files.append(path)
    return files


def _ingest(
    files: list[Path], store: FastDocumentStore, embedder: EmbedderInfo, settings: ChunkSettings
) -> tuple[float, dict[str, float]]:
    """Seconds to index `files` and the seconds per phase; every file must index."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    reports = ingest_files(files, store, embedder, settings, timings=timings)
    seconds = time.perf_counter() - start
    failed = [r for r in reports if r.status != "indexed"]
    if failed:
        raise RuntimeError(f"{len(failed)} bench file(s) did not index: {_reasons(failed)}")
    return seconds, timings


def _reasons(reports: list[FileReport]) -> str:
    return "; ".join(r.error for r in reports[:3])


def _raw_encoder(embedder: EmbedderInfo, settings: ChunkSettings) -> tuple[Callable[[list[str]], Any], int]:
    """Plain `SentenceTransformer.encode` with the settings the ingest embedder uses, and their batch size."""
    from sentence_transformers import SentenceTransformer

    component = loaded_embedder(embedder, settings)
    product = component.embedding_backend.model  # type: ignore[union-attr]
    model = SentenceTransformer(embedder.model, device=str(product.device), local_files_only=embedder.local)
    model.max_seq_length = product.max_seq_length

    def encode(texts: list[str]) -> Any:
        return model.encode(
            texts,
            batch_size=component.batch_size,
            normalize_embeddings=component.normalize_embeddings,
            precision=component.precision,
            show_progress_bar=False,
        )

    return encode, component.batch_size


@dataclass
class _Totals:
    chunks: int = 0
    ingest_s: float = 0.0
    raw_s: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    round_ratios: list[float] = field(default_factory=list)


def run_ingest_bench(chunks: int = DEFAULT_CHUNKS, round_chunks: int = ROUND_CHUNKS, seed: int = 0) -> dict[str, Any]:
    """Chunks/s through `ingest_files` into a fresh store, and through raw encoding of the same chunk texts.

    The files go in rounds of about `round_chunks` chunks, each round's ingest followed by the raw encoding of its
    chunks, so a change in the machine's load during the run slows both sides alike.
    """
    if chunks < 1 or round_chunks < 1:
        raise UserError("chunks and round_chunks must be at least 1")
    embedder = resolve_embedder(None)
    settings = ChunkSettings(embedder.max_chunk_tokens, 50)  # the product's default chunking
    with tempfile.TemporaryDirectory() as folder:
        # Warm-up, untimed: one file of each format loads the converters, the tokenizer and the model.
        warm_up = write_corpus(Path(folder) / "warm-up", len(WRITERS), seed + 1, per_file=1)
        _ingest(warm_up, FastDocumentStore(), embedder, settings)
        encode, batch_size = _raw_encoder(embedder, settings)
        encode(sample_paragraphs()[:WARM_UP_TEXTS])

        store, totals = FastDocumentStore(), _Totals()
        files = write_corpus(Path(folder) / "corpus", chunks, seed)
        size = max(1, round_chunks // CHUNKS_PER_FILE)  # files per round
        for first in range(0, len(files), size):
            _measure_round(files[first : first + size], store, embedder, settings, encode, totals)
    if totals.chunks != store.count_documents():
        raise RuntimeError(f"encoded {totals.chunks} chunk texts but the store holds {store.count_documents()}")
    return _report(len(files), totals, settings, batch_size)


def _measure_round(
    files: list[Path],
    store: FastDocumentStore,
    embedder: EmbedderInfo,
    settings: ChunkSettings,
    encode: Callable[[list[str]], Any],
    totals: _Totals,
) -> None:
    """Indexes `files`, then encodes the texts of exactly the chunks they gave, and adds both times to `totals`."""
    ingest_s, timings = _ingest(files, store, embedder, settings)
    names = [path.name for path in files]
    texts = [
        doc.content or ""
        for doc in store.filter_documents({"field": "meta.file_path", "operator": "in", "value": names})
    ]
    start = time.perf_counter()
    encode(texts)
    raw_s = time.perf_counter() - start
    totals.chunks += len(texts)
    totals.ingest_s += ingest_s
    totals.raw_s += raw_s
    for phase, seconds in timings.items():
        totals.phases[phase] = totals.phases.get(phase, 0.0) + seconds
    totals.round_ratios.append(round(raw_s / ingest_s, 3))


def _report(files: int, totals: _Totals, settings: ChunkSettings, batch_size: int) -> dict[str, Any]:
    ingest_rate, raw_rate = totals.chunks / totals.ingest_s, totals.chunks / totals.raw_s
    ratio = ingest_rate / raw_rate
    phases = {phase: totals.phases.get(phase, 0.0) for phase in ("convert_s", "split_s", "embed_s", "write_s")}
    return {
        "chunks": totals.chunks,
        "files": files,
        "chunk_tokens": settings.size,
        "chunk_overlap": settings.overlap,
        "batch_size": batch_size,
        "ingest_chunks_per_s": round(ingest_rate, 2),
        "raw_encode_chunks_per_s": round(raw_rate, 2),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "round_ratios": totals.round_ratios,
        "ingest_s": round(totals.ingest_s, 3),
        "raw_encode_s": round(totals.raw_s, 3),
        "convert_split_s": round(phases["convert_s"] + phases["split_s"], 3),
        **{phase: round(seconds, 3) for phase, seconds in phases.items()},
    }
