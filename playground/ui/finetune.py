"""The Fine-tune tab: check a dataset, launch a LoRA fine-tune, watch it live, manage the adapters it makes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gradio as gr
import pandas as pd

from adapters.jobs.view import JobView
from adapters.training.backends import AUTO
from adapters.training.common import FitSettings, LoraSettings
from playground.config import SAMPLE_DATA
from playground.finetune import (
    ADAPTER_HEADERS,
    ISSUE_HEADERS,
    JOB_HEADERS,
    STATS_HEADERS,
    FinetuneService,
    SnapshotVersion,
    adapter_rows,
    registered_names,
    stats_rows,
)
from playground.ui.documents import upload_cache
from playground.ui.errors import shows_errors
from playground.usage_log import consent_default

TARGET_MODULES = list(LoraSettings().target_modules)
# Fixed column shares, so that at 1400 px no header collapses to a letter per line and long text wraps in place.
JOB_WIDTHS = ["18%", "14%", "9%", "8%", "12%", "10%", "29%"]
ADAPTER_WIDTHS = ["14%", "15%", "12%", "6%", "11%", "10%", "10%", "7%", "15%"]
SERIES = {"train": "train loss (each step)", "held_out": "held-out loss"}


@dataclass(frozen=True)
class SettingInput:
    """One LoRA or fit setting on the page: the dataclass field it sets, its label, and how it is typed in."""

    owner: type[LoraSettings] | type[FitSettings]
    field: str
    label: str
    kind: Literal["int", "float", "modules"]
    elem_id: str | None = None


# The one list the inputs, the preset's values and a launch's overrides are all made from, in page order.
SETTING_INPUTS = (
    SettingInput(LoraSettings, "rank", "LoRA rank", "int", "ft-rank"),
    SettingInput(LoraSettings, "alpha", "LoRA alpha", "int"),
    SettingInput(LoraSettings, "dropout", "LoRA dropout", "float"),
    SettingInput(LoraSettings, "target_modules", "Target modules", "modules"),
    SettingInput(FitSettings, "learning_rate", "Learning rate", "float"),
    SettingInput(FitSettings, "epochs", "Epochs (when max steps is empty)", "float"),
    SettingInput(FitSettings, "max_steps", "Max steps", "int", "ft-steps"),
    SettingInput(FitSettings, "batch_size", "Batch size", "int", "ft-batch"),
    SettingInput(FitSettings, "max_seq_length", "Max sequence length", "int"),
)


def setting_values(lora: LoraSettings, fit: FitSettings) -> list[Any]:
    """A preset's values as the inputs show them, in SETTING_INPUTS order."""
    values = []
    for setting in SETTING_INPUTS:
        value = getattr(lora if setting.owner is LoraSettings else fit, setting.field)
        values.append(list(value) if setting.kind == "modules" else value)
    return values


def setting_overrides(values: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the inputs hold, as the LoRA and fit overrides a launch takes (None: an emptied box)."""
    lora: dict[str, Any] = {}
    fit: dict[str, Any] = {}
    for setting, value in zip(SETTING_INPUTS, values, strict=True):
        target = lora if setting.owner is LoraSettings else fit
        if setting.kind == "modules":
            target[setting.field] = tuple(value or ())
        elif setting.kind == "int":
            target[setting.field] = _int(value)
        else:
            target[setting.field] = None if value in (None, "") else float(value)
    return lora, fit


def _setting_input(setting: SettingInput, value: Any) -> gr.Component:
    if setting.kind == "modules":
        return gr.CheckboxGroup(TARGET_MODULES, value=value, label=setting.label, elem_id=setting.elem_id)
    precision = 0 if setting.kind == "int" else None
    return gr.Number(value=value, precision=precision, label=setting.label, elem_id=setting.elem_id)


def _examples() -> list[tuple[str, str]]:
    folder = SAMPLE_DATA / "finetune"
    files = sorted(p for p in folder.rglob("*") if p.suffix in {".jsonl", ".json", ".csv"})
    return [(str(p.relative_to(folder)), str(p)) for p in files]


def _progress_html(view: JobView | None, mine_only: bool = False) -> str:
    if view is None:
        return "<p>No fine-tune from this browser yet.</p>" if mine_only else "<p>No fine-tune has run yet.</p>"
    percent = round(view.fraction * 100)
    eta = "" if view.eta_s is None or view.final else f" · about {view.eta_s:.0f} s left"
    speed = "" if view.tokens_per_s is None else f" · {view.tokens_per_s:.0f} tokens/s"
    where = f"step {view.step} of {view.total_steps}" if view.total_steps else (view.phase or "starting")
    if view.state == "queued":
        where = f"waiting in the queue (position {view.queue_position})"
    losses = "" if view.loss is None else f" · train loss (last step) {view.loss:.4f}"
    losses += "" if view.eval_loss is None else f" · held-out loss {view.eval_loss:.4f}"
    return (
        f"<div class='job-head'><b>{view.name}</b> · {view.state} · {where}{speed}{eta}{losses}</div>"
        f"<div class='job-bar'><div style='width:{percent}%'></div></div>"
    )


def _status(view: JobView | None) -> str:
    if view is None:
        return ""
    lines = []
    if view.resumed_from:
        lines.append(f"Goes on from job {view.resumed_from}'s last checkpoint, with its data and settings.")
    if view.backend:
        lines.append(f"Backend: **{view.backend}** — {view.backend_reason}")
    if view.dataset is not None:
        d = view.dataset
        source = f" ({d.source})" if d.source else ""
        lines.append(f"Data: {d.train} training and {d.holdout} held-out examples from {d.file}{source}")
    if view.forgetting:
        lines.append(f"Forgetting check (general text and questions, outside the fine-tuning data): {view.forgetting}")
    if view.state == "completed":
        lines.append(f"Saved adapter **{view.adapter}**: choose it in the Compare tab.")
    elif view.state == "cancelled" and view.adapter:
        lines.append(f"Cancelled: the adapter **{view.adapter}** was saved as incomplete (usable in Compare).")
    elif view.state in {"cancelled", "failed"} and view.error:
        lines.append(f"**{view.state.capitalize()}**: {view.error}")
    if view.state in {"cancelled", "failed"} and view.checkpoint_step:
        lines.append(f"Checkpoint at step {view.checkpoint_step}: **Resume** goes on from there.")
    return "\n\n".join(lines)


def _losses(view: JobView | None) -> pd.DataFrame:
    rows = []
    if view is not None:
        rows += [{"step": s, "loss": v, "series": SERIES["train"]} for s, v in view.losses]
        rows += [{"step": s, "loss": v, "series": SERIES["held_out"]} for s, v in view.eval_losses]
    return pd.DataFrame(rows, columns=["step", "loss", "series"])


def build(
    service: FinetuneService,
    compare_adapter: gr.Dropdown,
    workspace: gr.BrowserState,
    consent: gr.Checkbox | None = None,
) -> None:
    """Lays out the tab; a finished fine-tune updates the Compare tab's adapter choice (`compare_adapter`);
    `consent`: the Compare tab's box that lets this browser's RAG answers be logged (and used here)."""
    backend = service.backend()
    gr.Markdown(
        f"Fine-tunes train a LoRA adapter on the loaded base model **{service.base_model_name()}**. "
        f"Backend (auto): **{backend.name}** — {backend.reason}. One job trains at a time; later ones wait in the "
        "queue.",
        elem_id="ft-backend",
    )
    if limits := service.limits.finetune_note():  # a public demo's caps, said before anyone runs into them
        gr.Markdown(limits, elem_id="ft-limits")
    gr.Markdown("### 1. Dataset")
    with gr.Row():
        upload = gr.File(
            label="Chat JSONL, Alpaca (JSON/JSONL), ShareGPT or CSV (question, answer)",
            file_types=[".jsonl", ".json", ".csv"],
            elem_id="ft-data",
            scale=3,
        )
        example = gr.Dropdown(_examples(), value=None, label="…or a sample dataset", elem_id="ft-example", scale=2)
    with gr.Accordion("…or build one from documents (RAG to fine-tuning)", open=False):
        with gr.Row():
            origin = gr.Radio(
                [("My uploaded documents", "mine"), ("The shared knowledge base", "shared")],
                value="shared",
                label="Documents",
                elem_id="ft-origin",
            )
            limit = gr.Slider(10, 500, value=100, step=10, label="At most this many pairs", elem_id="ft-limit")
            make = gr.Button("Build question–answer pairs", elem_id="ft-build")
        built_note = gr.Markdown(elem_id="ft-built-note")
        pairs = gr.Dataframe(
            headers=["Question", "Answer", "Source", "Method"],
            value=[],
            interactive=True,
            wrap=True,
            label="Review and edit (empty a question or answer to drop the row)",
            elem_id="ft-pairs",
        )
        with gr.Row():
            use_pairs = gr.Button("Use these pairs as the dataset", elem_id="ft-use-pairs")
            use_usage = gr.Button("Use my RAG answers", elem_id="ft-use-usage")  # from the Compare tab's log
    usage_total = gr.State(None)  # the table came from the usage log, which held this many answers; None: it did not
    data_path = gr.State(None)
    verdict = gr.Markdown(elem_id="ft-verdict")
    issues = gr.Dataframe(headers=ISSUE_HEADERS, value=[], interactive=False, label="Problems", elem_id="ft-issues")
    stats = gr.Dataframe(
        headers=STATS_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        column_widths=["34%", "66%"],
        max_height=900,  # every row in view, no scrolling inside the table
        label="Counts, lengths in the base model's tokens, duplicates and a few examples",
        elem_id="ft-stats",
    )

    gr.Markdown("### 2. Settings")
    lora, fit = service.preset("quick demo")
    with gr.Row():
        preset = gr.Dropdown(list(service.presets()), value="quick demo", label="Preset", elem_id="ft-preset")
        name = gr.Textbox(label="Adapter name", placeholder="from the file name", elem_id="ft-name")
        holdout = gr.Slider(0, 50, value=10, step=1, label="Held out for evaluation (%)", elem_id="ft-holdout")
    with gr.Row():
        backend_choice = gr.Dropdown(
            service.backend_options(), value=AUTO, label="Training backend", elem_id="ft-backend-choice", scale=1
        )
        backend_note = gr.Markdown(service.backend_note(AUTO), elem_id="ft-backend-note", scale=2)
    with gr.Accordion("LoRA and training settings (the preset's values)", open=False), gr.Row():
        shown = zip(SETTING_INPUTS, setting_values(lora, fit), strict=True)
        fields = {setting.field: _setting_input(setting, value) for setting, value in shown}
    settings = list(fields.values())
    length = fields["max_seq_length"]  # the dataset check also counts the examples longer than this
    memory = gr.Markdown(service.memory_note("quick demo"), elem_id="ft-memory")
    launch = gr.Button("Launch fine-tune", variant="primary", elem_id="ft-launch")

    gr.Markdown("### 3. Progress")
    progress = gr.HTML(_progress_html(None), elem_id="ft-progress")
    status = gr.Markdown(elem_id="ft-status")
    plot = gr.LinePlot(
        _losses(None), x="step", y="loss", color="series", label="Training and held-out loss", elem_id="ft-plot"
    )
    with gr.Row():
        cancel = gr.Button("Cancel (stops after the current step, keeps the adapter)", elem_id="ft-cancel")
        resume = gr.Button("Resume from the last checkpoint", elem_id="ft-resume")
    jobs = gr.Dataframe(
        headers=JOB_HEADERS,
        value=[],
        interactive=False,
        wrap=True,
        column_widths=JOB_WIDTHS,
        label="Jobs",
        elem_id="ft-jobs",
    )

    gr.Markdown("### 4. Adapters")
    adapters = gr.Dataframe(
        headers=ADAPTER_HEADERS,
        value=adapter_rows(service, service.roles.caller(None)),
        interactive=False,
        wrap=True,
        column_widths=ADAPTER_WIDTHS,
        label="The startup adapter, then those trained on this base model (newest first)",
        elem_id="ft-adapters",
    )
    with gr.Row():
        chosen = gr.Dropdown(
            registered_names(service, service.roles.caller(None)),
            label="Adapter (trained here; the startup adapter stays)",
            elem_id="ft-chosen",
            scale=2,
        )
        delete = gr.Button("Delete", variant="stop", elem_id="ft-delete")
        export = gr.Button("Export merged model", elem_id="ft-export")
    roles = service.roles
    with gr.Row():
        repo = gr.Textbox(label="Hub repository (owner/name)", elem_id="ft-repo", scale=2)
        server_token = "the server's HF_TOKEN, owner only" if roles.shared else "HF_TOKEN from the server's environment"
        token = gr.Textbox(
            label=f"Hugging Face token (not stored; empty: {server_token})",
            type="password",
            elem_id="ft-token",
            scale=2,
        )
        push = gr.Button("Push adapter to the Hub", elem_id="ft-push")
    with gr.Row(visible=roles.shared):
        password = gr.Textbox(label="Owner password", type="password", elem_id="ft-owner-password", scale=2)
        unlock = gr.Button("Unlock the owner's actions", elem_id="ft-unlock")
        publish = gr.Button("Publish the chosen adapter to every visitor", elem_id="ft-publish")
    gr.Markdown(roles.note(), elem_id="ft-roles", visible=roles.shared)
    unlocked = gr.State(False)  # this page has typed the owner password (per browser tab, never stored)
    adapter_message = gr.Markdown(elem_id="ft-adapter-message")
    seen = gr.State(None)  # the version of what this page shows (None: nothing yet), to send only what changed

    def check(path: str | None, most_tokens: float | None = None) -> tuple[Any, ...]:
        if not path:
            return None, "", [], []
        validation = service.validate(Path(path), _int(most_tokens))
        count = validation.stats.get("count", 0)
        if validation.ok:
            message = f"**{Path(path).name}** is ready: {count} examples ({validation.dataset.format})."
        else:
            message = f"**{Path(path).name}** has {len(validation.dataset.issues)} problem(s): fix them to launch."
        return path, message, validation.issue_rows(), stats_rows(validation.stats)

    def take(path: str | None, most_tokens: float | None, workspace_id: str | None) -> tuple[Any, ...]:
        """An uploaded dataset leaves Gradio's cache (which serves it) at once, for the browser's workspace."""
        if not path:
            return check(None)
        kept = service.keep_upload(workspace_id, Path(path), upload_cache())
        return check(str(kept), most_tokens)

    @shows_errors
    def build_pairs(chosen: str, most: float, workspace_id: str | None) -> tuple[str, list[list[str]], None]:
        report = service.build_from_documents(chosen, workspace_id, int(most))
        return report.note, report.rows(), None

    @shows_errors
    def adopt_pairs(table: Any, most_tokens: float | None, total: int | None) -> tuple[Any, ...]:
        rows = table.values.tolist() if isinstance(table, pd.DataFrame) else list(table or [])
        path = service.save_pairs(rows, usage_total=total)
        return check(str(path), most_tokens)

    @shows_errors
    def adopt_usage(workspace_id: str | None, logging: bool, most_tokens: float | None) -> tuple[Any, ...]:
        """The filtered usage log fills the review table and becomes the dataset, checked as any other."""
        selection = service.usage_pairs(workspace_id, bool(logging))
        rows = selection.rows()
        path = service.save_pairs(rows, usage_total=selection.total)
        return (selection.note(), rows, selection.total, *check(str(path), most_tokens))

    def apply_preset(choice: str) -> list[Any]:
        return setting_values(*service.preset(choice))

    @shows_errors
    def explain_backend(choice: str) -> str:
        return service.backend_note(choice)

    def explain_memory(choice: str, backend: str, *values: Any) -> str:
        lora, fit = setting_overrides(values)
        return service.memory_note(choice, lora, fit, backend or AUTO)

    @shows_errors
    def start(
        path: str | None,
        choice: str,
        wanted: str,
        share: float,
        workspace_id: str | None,
        owner: bool,
        backend: str,
        *values: Any,
    ) -> tuple[Any, ...]:
        if not path:
            raise gr.Error("Upload a dataset or choose a sample one first.")
        lora, fit = setting_overrides(values)
        caller = roles.caller(workspace_id, owner)
        view = service.launch(
            Path(path), wanted, choice, lora, fit, holdout=float(share) / 100, backend=backend or AUTO, caller=caller
        )
        return _progress_html(view), _status(view), _losses(view), service.job_table(caller)

    @shows_errors
    def stop(workspace_id: str | None, owner: bool) -> str:
        return service.cancel(roles.caller(workspace_id, owner))

    @shows_errors
    def go_on(workspace_id: str | None, owner: bool) -> tuple[Any, ...]:
        caller = roles.caller(workspace_id, owner)
        view = service.resume(caller)
        return _progress_html(view), _status(view), _losses(view), service.job_table(caller)

    def tick(shown: SnapshotVersion | None, workspace_id: str | None, owner: bool) -> tuple[Any, ...]:
        """Sends only what changed since this page's last tick: every open page polls once a second, and most
        ticks find nothing new (then nothing is read or sent, the version kept included)."""
        snapshot = service.snapshot(roles.caller(workspace_id, owner), shown)
        if snapshot is None:
            return (gr.skip(),) * 8
        job_updates: tuple[Any, ...] = (gr.skip(),) * 4
        if (jobs_shown := snapshot.jobs) is not None:
            view = jobs_shown.current
            job_updates = (_progress_html(view, jobs_shown.mine_only), _status(view), _losses(view), jobs_shown.rows)
        adapter_updates: tuple[Any, ...] = (gr.skip(),) * 3  # dropdowns change only with the adapters
        if (listed := snapshot.adapters) is not None:
            adapter_updates = (
                gr.update(value=listed.rows),
                gr.update(choices=listed.managed),
                gr.update(choices=listed.choices),
            )
        return (*job_updates, *adapter_updates, snapshot.version)

    @shows_errors
    def remove(name: str | None, workspace_id: str | None, owner: bool) -> str:
        service.delete(name, roles.caller(workspace_id, owner))
        return f"Deleted {name}."

    @shows_errors
    def merged(name: str | None, workspace_id: str | None, owner: bool) -> str:
        return f"Merged model written to `{service.export_merged(name, roles.caller(workspace_id, owner))}`."

    @shows_errors
    def upload_to_hub(
        name: str | None, repo_id: str, typed: str, workspace_id: str | None, owner: bool
    ) -> tuple[str, str]:
        url = service.push_to_hub(name, repo_id, typed, roles.caller(workspace_id, owner))
        return f"Pushed {name} to {url}.", ""  # the token box is emptied, never echoed

    def become_owner(typed: str) -> tuple[bool, str, str]:
        if not roles.unlock(typed or ""):
            raise gr.Error("That is not the owner password (PLAYGROUND_OWNER_PASSWORD).")
        return True, "", "Owner actions unlocked in this tab."

    @shows_errors
    def make_public(name: str | None, workspace_id: str | None, owner: bool) -> str:
        service.publish(name, roles.caller(workspace_id, owner))
        return f"Published {name}: every visitor can now choose it."

    private = {"api_visibility": "private"}
    upload.change(take, [upload, length, workspace], [data_path, verdict, issues, stats], **private)
    example.change(check, [example, length], [data_path, verdict, issues, stats], **private)
    make.click(build_pairs, [origin, limit, workspace], [built_note, pairs, usage_total], **private)
    use_pairs.click(adopt_pairs, [pairs, length, usage_total], [data_path, verdict, issues, stats], **private)
    logging = consent if consent is not None else gr.State(consent_default(service.runtime.settings))
    use_usage.click(
        adopt_usage,
        [workspace, logging, length],
        [built_note, pairs, usage_total, data_path, verdict, issues, stats],
        **private,
    )
    preset.change(apply_preset, preset, settings, **private)
    backend_choice.change(explain_backend, backend_choice, backend_note, **private)
    # A preset changes every setting at once: the last change's estimate is the one that counts.
    gr.on(
        [backend_choice.change, *(setting.change for setting in settings)],
        explain_memory,
        [preset, backend_choice, *settings],
        memory,
        trigger_mode="always_last",
        **private,
    )
    who = [workspace, unlocked]
    launch_inputs = [data_path, preset, name, holdout, *who, backend_choice, *settings]
    launch.click(start, launch_inputs, [progress, status, plot, jobs], **private)
    cancel.click(stop, who, status, **private)
    resume.click(go_on, who, [progress, status, plot, jobs], **private)
    timer = gr.Timer(1.0)
    timer.tick(
        tick, [seen, *who], [progress, status, plot, jobs, adapters, chosen, compare_adapter, seen], **private,
        show_progress="hidden",
    )  # fmt: skip
    delete.click(remove, [chosen, *who], adapter_message, **private)
    export.click(merged, [chosen, *who], adapter_message, **private)
    push.click(upload_to_hub, [chosen, repo, token, *who], [adapter_message, token], **private)
    unlock.click(become_owner, password, [unlocked, password, adapter_message], **private)
    publish.click(make_public, [chosen, *who], adapter_message, **private)


def _int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)
