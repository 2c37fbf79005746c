"""Assembles the Gradio Blocks page from the tabs."""

from __future__ import annotations

import gradio as gr

from pipelines.ingest import IngestLimits
from playground.advisor import AdvisorService
from playground.arena import ArenaService
from playground.compare import CompareService
from playground.documents import DocumentsService
from playground.eval_service import EvaluateService
from playground.finetune import FinetuneService
from playground.freshness import FreshnessService
from playground.load import LoadLimits, enable_queue
from playground.runtime import Runtime
from playground.ui import advisor as advisor_tab
from playground.ui import api
from playground.ui import arena as arena_tab
from playground.ui import compare as compare_tab
from playground.ui import documents as documents_tab
from playground.ui import evaluate as evaluate_tab
from playground.ui import finetune as finetune_tab
from playground.ui.render import CSS, model_banner
from playground.usage_log import consent_default

TITLE = "RAG or fine-tuning? A side-by-side playground"


def build_app(runtime: Runtime, finetune: FinetuneService | None = None) -> gr.Blocks:
    """`finetune` holds the job queue; one per app (a second one would only watch, see JobManager)."""
    finetune = finetune or FinetuneService(runtime)
    service = CompareService(runtime, attach=finetune.ensure_loaded)
    documents = DocumentsService(runtime)
    with gr.Blocks(title=TITLE, delete_cache=(5 * 60, 30 * 60)) as app:  # uploads whose event never ran, after 30 min
        # The browser's private workspace id, kept in its local storage so a reload finds its uploads again.
        workspace = gr.BrowserState(None, storage_key="playground-workspace")
        gr.Markdown(f"# {TITLE}")
        banner = gr.Markdown(model_banner(runtime.model), elem_id="model-banner")
        with gr.Tab("Compare"):
            with gr.Tab("Side by side"):
                choices = finetune.adapter_choices(finetune.roles.caller(None))  # a visitor's view until page load
                consent = consent_default(runtime.settings)  # off on a shared demo
                controls = compare_tab.build(service, workspace, choices, banner, finetune.usage, consent)
            arena = ArenaService(service)
            arena_tab.build(arena, workspace, controls)  # the blind mode: its own sub-tab
        with gr.Tab("Documents"):
            refresh, filled = documents_tab.build(documents, workspace, controls.files, service.sources)
        with gr.Tab("Fine-tune"):
            finetune_tab.build(finetune, controls.adapter, workspace, controls.usage_consent)
        with gr.Tab("Evaluate"):
            evaluate = EvaluateService(service)
            fresh = FreshnessService(service, refinetune=finetune.train_and_wait)
            earlier_runs, history = evaluate_tab.build(evaluate, workspace, controls, fresh)
        with gr.Tab("Which approach?"):
            advisor = AdvisorService(runtime.settings.home, evaluate.roles)
            advisor_tab.build(advisor, workspace)
        api.build(documents, finetune, arena, advisor, evaluate, fresh)  # an endpoint per action, beside the page's

        def open_workspace(workspace_id: str | None) -> str:
            return documents.workspace(workspace_id).id

        def current_adapters(chosen: str | None, workspace_id: str | None) -> dict:
            # Adapters trained since the page was served (or by another page) are offered on every load.
            names = finetune.adapter_choices(finetune.roles.caller(workspace_id))
            return gr.update(choices=names, value=chosen if chosen in names else runtime.model.adapter)

        app.load(open_workspace, workspace, workspace, api_visibility="private").then(
            refresh, workspace, filled, api_visibility="private"
        ).then(current_adapters, [controls.adapter, workspace], controls.adapter, api_visibility="private").then(
            earlier_runs, workspace, history, api_visibility="private"
        )
    enable_queue(app, LoadLimits.of(runtime.settings), default_concurrency_limit=4)
    return app


def launch(app: gr.Blocks, host: str, port: int, share: bool, max_file_size: int = IngestLimits().max_bytes) -> None:
    """Serve until Ctrl-C or SIGTERM; either way the browsers' uploaded files are removed before this returns. Gradio's
    upload cache is kept in the server's workspaces folder, so it goes too (or at the next start, after a crash).
    `max_file_size`: Gradio refuses a bigger upload before it is stored (one limit for every upload of the page, so
    Fine-tune datasets too)."""
    import signal
    import sys
    import threading

    from playground.ui.documents import uploads_cached_in
    from playground.workspaces import close_all, upload_cache

    def interrupt(signum: int, frame: object) -> None:
        # SIGTERM would end the process without any cleanup; Gradio's wait loop stops the server on this.
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()  # only the main thread may set handlers
    previous = signal.signal(signal.SIGTERM, interrupt) if in_main else None
    try:
        with uploads_cached_in(app, upload_cache()):
            app.launch(server_name=host, server_port=port, share=share, css=CSS, max_file_size=max_file_size)
    except KeyboardInterrupt:  # it came before Gradio's wait loop, which would have closed the server: close it here
        app.close()
    except OSError as error:  # Gradio could not bind: a user's choice of port or host, not a bug
        reason = str(error).split(". ")[0]
        print(f"error: cannot serve on {host}:{port} ({reason}); choose another --port or --host", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        close_all()
