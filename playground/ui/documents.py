"""The Documents tab: upload files into the session's private workspace, inspect their chunks, re-index, delete."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from playground.documents import TABLE_HEADERS, DocumentsService
from playground.ui.errors import shows_errors
from playground.ui.render import chunks_html

Refresh = Callable[[str | None], tuple[Any, ...]]
# Fixed shares of the table, so a long message wraps in its own column instead of squeezing the numbers' headers
# to a letter per line: file, status, pages, characters, chunks, message.
COLUMN_WIDTHS = ["20%", "8%", "7%", "10%", "7%", "48%"]
NO_PREVIEW = "Choose a file to preview its chunks."
log = logging.getLogger(__name__)


def _progress(progress: gr.Progress) -> Callable[[int, int, str], None]:
    def report(done: int, total: int, stage: str) -> None:
        if stage == "reading":
            progress((done, total), desc="Reading and converting files", unit="files")
        else:
            progress((done, total), desc="Embedding the chunks", unit="chunks")

    return report


def _paths(files: list[Any] | None) -> list[Path]:
    return [Path(getattr(f, "name", f)) for f in files or []]


def upload_cache() -> Path:
    """Gradio's upload cache: it serves any file in it at /gradio_api/file= to whoever has the path."""
    return Path(get_upload_folder())


@contextlib.contextmanager
def uploads_cached_in(app: gr.Blocks, folder: Path | None) -> Iterator[None]:
    """Serve `app` with Gradio's upload cache in `folder` (None: Gradio's own). The server reads GRADIO_TEMP_DIR when
    it starts, but each component took its cache folder when built: theirs must match, or Gradio would copy every
    upload from one to the other and the copy in the cache would stay."""
    if folder is None:
        yield
        return
    path = str(folder.resolve())  # the same folder whatever the working directory later
    earlier = os.environ.get("GRADIO_TEMP_DIR")
    if earlier:
        log.info("Uploads are cached in %s, not in GRADIO_TEMP_DIR (%s)", path, earlier)
    os.environ["GRADIO_TEMP_DIR"] = path
    for block in (app, *app.blocks.values()):
        block.GRADIO_CACHE = path
    try:
        yield
    finally:
        if earlier is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = earlier


def build(
    service: DocumentsService,
    workspace: gr.BrowserState,
    compare_files: gr.Dropdown,
    sources: Callable[[str | None], list[str]],
) -> tuple[Refresh, list[gr.components.Component]]:
    """Lays out the tab. Uploads and deletes also update the Compare tab's file filter (`compare_files`, with
    the choices `sources` gives). Returns a refresh function for page load and the components it fills."""
    gr.Markdown(
        "Upload your own files (txt, md, pdf, docx, html, csv, json). They are indexed for **this browser only**: "
        "other visitors never retrieve them. They are kept while you use the page and dropped a few hours "
        "after you stop, or when the server restarts."
    )
    gr.Markdown(service.shared_summary(), elem_id="shared-summary")
    gr.Markdown(service.limits_note(), elem_id="doc-limits")
    with gr.Row():
        most = service.workspaces.limits.max_bytes // 2**20
        upload = gr.File(
            file_count="multiple", label=f"Upload files (at most {most} MB each)", elem_id="upload", scale=3
        )
        folder = gr.UploadButton("Upload a folder", file_count="directory", elem_id="upload-folder", scale=1)
    status = gr.Markdown(elem_id="upload-status")
    table = gr.Dataframe(
        headers=TABLE_HEADERS,
        elem_id="doc-table",
        interactive=False,
        label="Your files",
        wrap=True,
        column_widths=COLUMN_WIDTHS,
        value=[],
    )
    with gr.Accordion("Chunking (applies to your files)", open=False):
        with gr.Row():
            size = gr.Number(
                value=service.chunking.size,
                precision=0,
                label=f"Chunk size in embedder tokens (the embedder reads {service.embedder_tokens})",
                elem_id="chunk-size",
            )
            overlap = gr.Number(value=service.chunking.overlap, precision=0, label="Overlap", elem_id="chunk-overlap")
            reindex = gr.Button("Re-index my files with these settings", elem_id="reindex")
        warning = gr.Markdown(elem_id="chunk-warning")
    with gr.Row():
        preview_file = gr.Dropdown([], label="Preview the chunks of", elem_id="preview-file", scale=3)
        delete_file = gr.Dropdown([], label="Delete one of your files", elem_id="delete-file", scale=2)
        delete = gr.Button("Delete", variant="stop", elem_id="delete", scale=1)
    preview = gr.HTML(chunks_html([], empty=NO_PREVIEW), elem_id="preview")

    def choices(token: str | None) -> tuple[Any, Any]:
        mine = service.workspace(token).files()
        return gr.update(choices=service.previewable(token)), gr.update(choices=mine, value=None)

    def refresh(token: str | None) -> tuple[Any, ...]:
        workspace = service.workspace(token)
        return (
            service.table(workspace),
            *choices(token),
            gr.update(value=workspace.chunking.size),
            gr.update(value=workspace.chunking.overlap),
            gr.update(choices=sources(token)),
        )

    @shows_errors
    def add(files: list[Any] | None, token: str | None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        paths = _paths(files)
        done = service.add(token, paths, _progress(progress), cache=upload_cache())
        return (done.rows, *choices(token), gr.update(choices=sources(token)), done.message, None)

    @shows_errors
    def redo(size_value: float, overlap_value: float, token: str | None, progress: gr.Progress = gr.Progress()):
        rows = service.reindex(token, int(size_value or 0), int(overlap_value or 0), _progress(progress))
        return (
            rows,
            gr.update(value=None),
            chunks_html([], empty=NO_PREVIEW),
            "Re-indexed your files with the new chunk settings.",
        )

    @shows_errors
    def remove(name: str | None, token: str | None) -> tuple[Any, ...]:
        if not name:
            raise gr.Error("Choose one of your files to delete first.")
        removed, rows = service.delete(token, name)
        message = f"Deleted {name} and its {removed} chunks."
        return (rows, *choices(token), gr.update(choices=sources(token)), message, chunks_html([], empty=NO_PREVIEW))

    def show(choice: str | None, token: str | None) -> str:
        return chunks_html(service.preview(token, choice) if choice else [], empty=NO_PREVIEW)

    private = {"api_visibility": "private"}
    fill = [table, preview_file, delete_file, compare_files]
    upload.upload(add, [upload, workspace], [*fill, status, upload], **private)
    folder.upload(add, [folder, workspace], [*fill, status, upload], **private)
    for number in (size, overlap):
        number.change(service_warning(service), [size, overlap], warning, **private)
    reindex.click(redo, [size, overlap, workspace], [table, preview_file, preview, status], **private)
    delete.click(remove, [delete_file, workspace], [*fill, status, preview], **private)
    preview_file.change(show, [preview_file, workspace], preview, **private)
    return refresh, [table, preview_file, delete_file, size, overlap, compare_files]


def service_warning(service: DocumentsService) -> Callable[[float | None, float | None], str]:
    return lambda size, overlap: service.chunk_warning(int(size or 0), int(overlap or 0))
