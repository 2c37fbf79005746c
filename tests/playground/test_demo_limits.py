"""A public demo's limits come from environment variables, reach what they protect, are refused in one line when
crossed, and are said on the page."""

from __future__ import annotations

from dataclasses import replace

import pytest

from adapters.errors import UserError
from playground.config import SAMPLE_DATA, Settings
from playground.demo_limits import MB, DemoLimits
from playground.finetune import FinetuneService

DATA = SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl"


def test_limits_come_from_the_environment_and_a_bad_one_names_its_variable(monkeypatch):
    for name, value in {
        "PLAYGROUND_MAX_UPLOAD_MB": "3",
        "PLAYGROUND_MAX_UPLOAD_FILES": "20",
        "PLAYGROUND_MAX_WORKSPACE_CHUNKS": "2000",
        "PLAYGROUND_SESSION_IDLE_HOURS": "0.5",
        "PLAYGROUND_MAX_TRAIN_STEPS": "100",
        "PLAYGROUND_MAX_JOBS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    limits = DemoLimits.of(Settings())
    assert limits == DemoLimits(3, 20, 2000, 0.5, 100, 2)
    assert limits.ingest.max_bytes == 3 * MB and limits.ingest.max_files == 20 and limits.idle_s == 1800
    assert limits.documents_note() == (
        "Limits here: files up to 3 MB, 20 per upload, 2000 chunks per browser, kept 0.5 h after your last visit."
    )
    assert limits.finetune_note() == (
        "Limits here: at most 100 training steps per fine-tune, 2 fine-tunes running or waiting at once."
    )
    monkeypatch.setenv("PLAYGROUND_MAX_UPLOAD_MB", "0")
    with pytest.raises(UserError, match="PLAYGROUND_MAX_UPLOAD_MB must be 1 or more, got 0"):
        DemoLimits.of(Settings())


def test_a_private_server_has_no_training_limits_to_show():
    assert DemoLimits.of(Settings()).finetune_note() == ""


def test_the_runtime_gives_the_upload_limits_to_the_workspaces(settings):
    from playground.runtime import start

    runtime = start(replace(settings, max_upload_mb=2, max_upload_files=7, max_workspace_chunks=40))
    workspaces = runtime.workspaces
    workspaces.close()  # now, not when collected: it shares the session runtime's folder
    assert (workspaces.limits.max_bytes, workspaces.limits.max_files, workspaces.max_chunks) == (2 * MB, 7, 40)
    with pytest.raises(UserError, match="PLAYGROUND_SESSION_IDLE_HOURS"):
        start(replace(settings, session_idle_hours=0))


def test_fine_tunes_past_the_limits_are_refused_in_one_line(runtime, tmp_path):
    limited = replace(runtime, settings=replace(runtime.settings, home=tmp_path, max_train_steps=50, max_jobs=1))
    service = FinetuneService(limited)
    try:
        with pytest.raises(UserError, match=r"would train 300 steps; this server allows at most 50"):
            service.launch(DATA, "long", "quick demo")
        running = service.launch(DATA, "first", "quick demo", fit={"max_steps": 40})
        with pytest.raises(UserError, match=r"1 fine-tune is running or waiting, the most this server takes"):
            service.launch(DATA, "second", "quick demo", fit={"max_steps": 10})
        service.jobs.cancel(running.id)
        service.jobs.wait(running.id, timeout_s=120)
        assert service.launch(DATA, "second", "quick demo", fit={"max_steps": 2}).name == "second"
    finally:
        service.jobs.close()


def test_the_page_says_the_limits_where_they_apply(runtime):
    from playground.app import build_app

    limited = replace(runtime, settings=replace(runtime.settings, max_train_steps=200, max_upload_mb=5))
    shown = {getattr(b, "elem_id", None): getattr(b, "value", None) for b in build_app(limited).blocks.values()}
    assert "files up to 5 MB" in shown["doc-limits"]
    assert shown["ft-limits"] == "Limits here: at most 200 training steps per fine-tune."
