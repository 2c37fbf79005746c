"""Turning service results into what the page shows (HTML, table rows, banners)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from pipelines.retrieval_modes import FUSED, RERANK, Stage
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
    elif model.source == "served" and model.note:
        text += f"\n\n> Every answer is {model.note} (PLAYGROUND_GENERATOR_URL), each LoRA adapter a model of its name."
    return text


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


# Retrieval scores in pipeline order: the name a chunk's header shows, and what the score means.
STAGES = {
    **{stage.value: (stage.label, stage.meaning) for stage in Stage},
    FUSED: ("fused", "reciprocal rank fusion of the stages' lists, from ranks alone (1 = first in all)"),
    RERANK: ("rerank", "cross-encoder relevance (0…1)"),
}
PREVIEW_CHARS = 300  # a longer chunk shows this much, and the rest on a click


def ran_stages(chunks: Sequence[dict[str, Any]], stages: Sequence[str] | None = None) -> list[str]:
    """The stages whose scores mean something, in pipeline order: `stages` when the caller knows them (from the
    retrieval mode), else those with a score on some chunk. Fusion counts only after several stages: fusing
    one list just repeats its ranking."""
    if stages is not None:
        return [name for name in STAGES if name in stages]
    scored = {name for chunk in chunks for name, value in (chunk.get("scores") or {}).items() if value is not None}
    if len(scored & {stage.value for stage in Stage}) < 2:
        scored.discard(FUSED)
    return [name for name in STAGES if name in scored]


def score_legend(stages: Sequence[str] | None, chunks: Sequence[dict[str, Any]] = ()) -> str:
    """One line saying what each shown score means (Markdown); empty when no scores are shown."""
    shown = ran_stages(chunks, stages)
    if not shown:
        return ""
    return "**Scores** · " + " · ".join(f"**{STAGES[name][0]}**: {STAGES[name][1]}" for name in shown)


def _marked(text: str, spans: Sequence[Sequence[int]], start: int = 0, end: int | None = None) -> str:
    """text[start:end], escaped, with the parts of the spans an answer used inside it in <mark>."""
    end = len(text) if end is None else end
    parts, at = [], start
    for span_start, span_end in spans:
        span_start, span_end = max(span_start, start), min(span_end, end)
        if span_start >= span_end:
            continue
        parts += [html.escape(text[at:span_start]), f"<mark>{html.escape(text[span_start:span_end])}</mark>"]
        at = span_end
    parts.append(html.escape(text[at:end]))
    return "".join(parts)


def _chunk_head(rank: int, chunk: dict[str, Any], stages: Sequence[str]) -> str:
    source = f"<span class='chunk-source'>{html.escape(chunk['source'])}</span>"
    if chunk.get("private"):
        source += " <span class='chunk-private'>your file</span>"
    scores = chunk.get("scores") or {}
    shown = "".join(f" · {STAGES[name][0]} {_score(scores.get(name))}" for name in stages)
    if not shown and chunk.get("score") is not None:  # a score from no known stage: shown as it is
        shown = f" · score {_score(chunk['score'])}"
    return f"<b>[{rank}]</b> {source}{shown}"


def _preview_end(text: str, spans: Sequence[Sequence[int]]) -> int:
    """Where the visible part of a long chunk ends: at a space near PREVIEW_CHARS, never inside a highlight."""
    cut = text.rfind(" ", PREVIEW_CHARS // 2, PREVIEW_CHARS)
    cut = PREVIEW_CHARS if cut < 0 else cut
    for start, end in spans:
        if start < cut < end:
            cut = end
    return cut


def _chunk_text(text: str, spans: Sequence[Sequence[int]]) -> str:
    """The whole text of a short chunk; of a long one, its start and a fold that opens onto all of it."""
    cut = _preview_end(text, spans)
    if len(text) - cut < PREVIEW_CHARS // 5:  # hiding a line or two saves nothing
        return f"<div class='chunk-text'>{_marked(text, spans)}</div>"
    later = sum(1 for start, _ in spans if start >= cut)
    note = f", {later} more highlighted passage{'s' if later > 1 else ''}" if later else ""
    return (
        f"<div class='chunk-text chunk-preview'>{_marked(text, spans, 0, cut)} …</div>"
        "<details class='chunk-full'><summary>"
        f"<span class='when-closed'>Show the whole chunk ({len(text):,} characters{note})</span>"
        "<span class='when-open'>Fold the chunk</span></summary>"
        f"<div class='chunk-text'>{_marked(text, spans)}</div></details>"
    )


def chunks_html(
    chunks: Sequence[dict[str, Any]], empty: str = "No chunks retrieved yet.", stages: Sequence[str] | None = None
) -> str:
    """The chunks with their source and the scores of the retrieval `stages` that ran (by default, those with a
    score on some chunk); the text an answer used is highlighted, and a long chunk opens to its whole text."""
    if not chunks:
        return f"<p class='chunks-empty'>{html.escape(empty)}</p>"
    shown = ran_stages(chunks, stages)
    items = []
    for rank, chunk in enumerate(chunks, start=1):
        items.append(
            "<div class='chunk'>"
            f"<div class='chunk-head'>{_chunk_head(rank, chunk, shown)}</div>"
            f"{_chunk_text(chunk['content'], chunk.get('used') or ())}"
            "</div>"
        )
    return "".join(items)


CSS = """
.chunk { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 8px; margin: 6px 0; }
.chunk-head { font-size: 0.9em; margin-bottom: 4px; }
.chunk-source { font-family: monospace; }
.chunk-private { background: var(--color-accent-soft); border-radius: 4px; padding: 0 4px; font-size: 0.85em; }
#score-legend .prose { font-size: var(--text-sm); }
.chunk-text { white-space: pre-wrap; font-size: 0.85em; }
.chunk-text mark { background: #fde68a; color: inherit; }
.chunk-full > summary { cursor: pointer; color: var(--link-text-color); font-size: 0.85em; margin-top: 2px; }
.chunk-full[open] > summary .when-closed, .chunk-full:not([open]) > summary .when-open { display: none; }
.chunk:has(> .chunk-full[open]) > .chunk-preview { display: none; }
.job-bar { height: 10px; background: var(--border-color-primary); border-radius: 5px; overflow: hidden; }
.job-bar > div { height: 100%; background: var(--color-accent); transition: width 0.5s; }
.job-head { margin-bottom: 6px; }
"""
