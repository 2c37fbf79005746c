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


def chunks_html(chunks: Sequence[dict[str, Any]]) -> str:
    if not chunks:
        return "<p class='chunks-empty'>No chunks retrieved yet.</p>"
    items = []
    for rank, chunk in enumerate(chunks, start=1):
        scores = chunk.get("scores") or {}
        items.append(
            "<div class='chunk'>"
            f"<div class='chunk-head'><b>[{rank}]</b> <span class='chunk-source'>{html.escape(chunk['source'])}</span>"
            f" · fused {_score(scores.get('fused', chunk.get('score')))}"
            f" · BM25 {_score(scores.get('bm25'))} · dense {_score(scores.get('dense'))}</div>"
            f"<div class='chunk-text'>{html.escape(chunk['content'])}</div>"
            "</div>"
        )
    return "".join(items)


CSS = """
#chunks .chunk { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 8px; margin: 6px 0; }
#chunks .chunk-head { font-size: 0.9em; margin-bottom: 4px; }
#chunks .chunk-source { font-family: monospace; }
#chunks .chunk-text { white-space: pre-wrap; font-size: 0.85em; max-height: 12em; overflow-y: auto; }
"""
