"""Turning service results into what the page shows (HTML, table rows, banners)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from playground.runtime import ModelInfo


def model_banner(model: ModelInfo) -> str:
    adapter = f"LoRA adapter **{model.adapter}**" if model.adapter else "no LoRA adapter yet"
    text = f"Base model **{model.base}** ({model.source}) · {adapter}"
    if model.is_demo:
        text += (
            "\n\n> This is the **offline demo model**: a small Llama this playground trained itself from "
            "`sample_data/` because no instruct model could be loaded"
            + (f" ({model.note})" if model.note else "")
            + ". Its answers show the mechanics of RAG vs fine-tuning, not the quality of a real model. "
            "Set `PLAYGROUND_BASE_MODEL` to a hub id or a local folder to use a real one."
        )
    return text


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _marked(text: str, spans: Sequence[Sequence[int]]) -> str:
    """The text, escaped, with the spans an answer used inside <mark>."""
    parts, at = [], 0
    for start, end in spans:
        parts += [html.escape(text[at:start]), f"<mark>{html.escape(text[start:end])}</mark>"]
        at = end
    parts.append(html.escape(text[at:]))
    return "".join(parts)


def _chunk_head(rank: int, chunk: dict[str, Any]) -> str:
    source = f"<span class='chunk-source'>{html.escape(chunk['source'])}</span>"
    if chunk.get("private"):
        source += " <span class='chunk-private'>your file</span>"
    if "scores" not in chunk and "score" not in chunk:  # a preview: no retrieval stages
        return f"<b>[{rank}]</b> {source}"
    scores = chunk.get("scores") or {}
    stages = f" · fused {_score(scores.get('fused', chunk.get('score')))}"
    stages += f" · BM25 {_score(scores.get('bm25'))} · dense {_score(scores.get('dense'))}"
    if scores.get("rerank") is not None:
        stages += f" · rerank {_score(scores['rerank'])}"
    return f"<b>[{rank}]</b> {source}{stages}"


def chunks_html(chunks: Sequence[dict[str, Any]], empty: str = "No chunks retrieved yet.") -> str:
    if not chunks:
        return f"<p class='chunks-empty'>{html.escape(empty)}</p>"
    items = []
    for rank, chunk in enumerate(chunks, start=1):
        items.append(
            "<div class='chunk'>"
            f"<div class='chunk-head'>{_chunk_head(rank, chunk)}</div>"
            f"<div class='chunk-text'>{_marked(chunk['content'], chunk.get('used') or ())}</div>"
            "</div>"
        )
    return "".join(items)


CSS = """
.chunk { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 8px; margin: 6px 0; }
.chunk-head { font-size: 0.9em; margin-bottom: 4px; }
.chunk-source { font-family: monospace; }
.chunk-private { background: var(--color-accent-soft); border-radius: 4px; padding: 0 4px; font-size: 0.85em; }
.chunk-text { white-space: pre-wrap; font-size: 0.85em; max-height: 12em; overflow-y: auto; }
.chunk-text mark { background: #fde68a; color: inherit; }
.job-bar { height: 10px; background: var(--border-color-primary); border-radius: 5px; overflow: hidden; }
.job-bar > div { height: 100%; background: var(--color-accent); transition: width 0.5s; }
.job-head { margin-bottom: 6px; }
"""
