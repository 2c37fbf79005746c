"""Assembles the Gradio Blocks page from the tabs."""

from __future__ import annotations

import gradio as gr

from playground.compare import CompareService
from playground.runtime import Runtime
from playground.ui import compare as compare_tab
from playground.ui.render import CSS, model_banner

TITLE = "RAG or fine-tuning? A side-by-side playground"


def build_app(runtime: Runtime) -> gr.Blocks:
    service = CompareService(runtime)
    with gr.Blocks(title=TITLE) as app:
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(model_banner(runtime.model), elem_id="model-banner")
        with gr.Tab("Compare"):
            compare_tab.build(service)
    app.queue(default_concurrency_limit=4)
    return app


def launch(app: gr.Blocks, host: str, port: int, share: bool) -> None:
    app.launch(server_name=host, server_port=port, share=share, css=CSS)
