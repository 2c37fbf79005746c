"""Assembles the Gradio Blocks page from the tabs."""

from __future__ import annotations

import gradio as gr

from playground.compare import CompareService
from playground.finetune import FinetuneService
from playground.runtime import Runtime
from playground.ui import compare as compare_tab
from playground.ui import documents as documents_tab
from playground.ui import finetune as finetune_tab
from playground.ui.render import CSS, model_banner
from playground.uploads import DocumentsService

TITLE = "RAG or fine-tuning? A side-by-side playground"


def build_app(runtime: Runtime, finetune: FinetuneService | None = None) -> gr.Blocks:
    """`finetune` holds the job queue; one per app (a second one would only watch, see JobManager)."""
    finetune = finetune or FinetuneService(runtime)
    service = CompareService(runtime, attach=finetune.ensure_loaded)
    documents = DocumentsService(runtime)
    with gr.Blocks(title=TITLE) as app:
        # The browser's private workspace id, kept in its local storage so a reload finds its uploads again.
        workspace = gr.BrowserState(None, storage_key="playground-workspace")
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(model_banner(runtime.model), elem_id="model-banner")
        with gr.Tab("Compare"):
            compare_files, compare_adapter = compare_tab.build(service, workspace, finetune.adapter_choices())
        with gr.Tab("Documents"):
            refresh, filled = documents_tab.build(documents, workspace, compare_files, service.sources)
        with gr.Tab("Fine-tune"):
            finetune_tab.build(finetune, compare_adapter, workspace)

        def open_workspace(workspace_id: str | None) -> str:
            return documents.workspace(workspace_id).id

        app.load(open_workspace, workspace, workspace, api_visibility="private").then(
            refresh, workspace, filled, api_visibility="private"
        )
    app.queue(default_concurrency_limit=4)
    return app


def launch(app: gr.Blocks, host: str, port: int, share: bool) -> None:
    app.launch(server_name=host, server_port=port, share=share, css=CSS)
