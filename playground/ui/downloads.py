"""The Side by side view's downloads: the finished comparison as JSON and as Markdown, and every comparison this
browser session finished as CSV (see `playground.export`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from playground import export
from playground.ui.errors import shows_errors


@dataclass(frozen=True)
class ComparisonDownloads:
    latest: gr.State  # the finished comparison's JSON document, set by the Ask handler; None while one streams
    kept: gr.State  # this browser session's finished comparisons, oldest first (per session: never shared)
    as_json: gr.DownloadButton
    as_markdown: gr.DownloadButton
    as_csv: gr.DownloadButton


def build(root: Path | None = None) -> ComparisonDownloads:
    """Lays out the buttons, disabled until a comparison finishes; `root`: where the files go (a temp folder)."""
    folder = root or export.default_root()
    with gr.Row():
        as_json = gr.DownloadButton("This comparison (JSON)", interactive=False, size="sm", elem_id="download-json")
        as_markdown = gr.DownloadButton(
            "This comparison (Markdown)", interactive=False, size="sm", elem_id="download-markdown"
        )
        as_csv = gr.DownloadButton(
            "This session's comparisons (CSV)", interactive=False, size="sm", elem_id="download-csv"
        )
    downloads = ComparisonDownloads(gr.State(None), gr.State([]), as_json, as_markdown, as_csv)

    @shows_errors
    def record(document: dict[str, Any] | None, kept: list[dict[str, Any]] | None) -> tuple[Any, ...]:
        if document is None:  # a new comparison started: the last one's files stay downloadable
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        kept, paths = export.comparison_files(document, kept, folder)
        return kept, *(gr.update(value=str(paths[kind]), interactive=True) for kind in ("json", "md", "csv"))

    downloads.latest.change(
        record,
        [downloads.latest, downloads.kept],
        [downloads.kept, as_json, as_markdown, as_csv],
        api_visibility="private",
    )
    return downloads
