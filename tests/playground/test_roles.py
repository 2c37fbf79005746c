"""A shared demo: visitors use their own adapters and need the owner for the server's token and others' adapters."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from playground.compare import CompareOptions, CompareService
from playground.config import Settings
from playground.finetune import OTHERS_JOB, FinetuneService, adapter_rows
from playground.roles import Roles

ALICE, BOB = "workspace-alice", "workspace-bob"


@pytest.fixture
def shared(runtime):
    """The session's runtime as a shared demo with an owner password."""
    settings = runtime.settings.with_overrides(shared=True, owner_password="open sesame")
    service = FinetuneService(replace(runtime, settings=settings))
    yield service
    service.jobs.close()


@pytest.fixture
def alices_adapter(runtime, shared):
    """An adapter a visitor trained: a copy of the demo adapter registered with that visitor as its owner."""
    folder = runtime.settings.home / "adapters" / "alice-voice"
    shutil.copytree(Path(runtime.engine.adapters[runtime.model.adapter]), folder)
    meta = {"name": "alice-voice", "base_model": runtime.model.base, "owner": ALICE, "created": "2026-11-23T10:00:00"}
    (folder / "playground.json").write_text(json.dumps(meta))
    yield "alice-voice"
    runtime.engine.unload_adapter("alice-voice")
    shutil.rmtree(folder, ignore_errors=True)


def test_a_visitors_adapter_is_theirs_until_the_owner_publishes_it(runtime, shared, alices_adapter):
    alice, bob = shared.roles.caller(ALICE), shared.roles.caller(BOB)
    assert alices_adapter in shared.adapter_choices(alice)
    assert alices_adapter not in shared.adapter_choices(bob)
    assert alices_adapter in [row[0] for row in adapter_rows(shared, alice)]
    assert "yours" in next(row[1] for row in adapter_rows(shared, alice) if row[0] == alices_adapter)
    compare = CompareService(shared.runtime, attach=shared.ensure_loaded)
    asked = CompareOptions(arms=("finetuned",), max_new_tokens=3, adapter=alices_adapter)
    assert compare.compare("Hi?", replace(asked, workspace=ALICE)).answers["finetuned"]["adapter"] == alices_adapter
    with pytest.raises(ValueError, match="No adapter named 'alice-voice'"):  # loaded now, still not Bob's
        compare.compare("Hi?", replace(asked, workspace=BOB))
    with pytest.raises(ValueError, match="Only the server's owner can publish"):
        shared.publish(alices_adapter, alice)
    shared.publish(alices_adapter, shared.roles.caller(None, unlocked=True))
    assert alices_adapter in shared.adapter_choices(bob)


def test_a_visitor_cannot_delete_or_export_anothers_adapter(shared, alices_adapter):
    bob = shared.roles.caller(BOB)
    for action in (shared.delete, shared.export_merged):
        with pytest.raises(ValueError, match="nothing to"):
            action(alices_adapter, bob)
    shared.publish(alices_adapter, shared.roles.caller(None, unlocked=True))
    with pytest.raises(ValueError, match="Only the server's owner can delete"):
        shared.delete(alices_adapter, bob)
    shared.delete(alices_adapter, shared.roles.caller(ALICE, unlocked=True))
    assert shared.registry.get(alices_adapter) is None


def test_the_visitor_who_trained_it_may_delete_it(shared, alices_adapter):
    shared.delete(alices_adapter, shared.roles.caller(ALICE))
    assert shared.registry.get(alices_adapter) is None


def test_a_visitor_cannot_push_with_the_servers_token(shared, alices_adapter, monkeypatch):
    calls: list[str] = []

    class FakeApi:
        def __init__(self, token):
            calls.append(token)

        def create_repo(self, repo_id, exist_ok):
            pass

        def upload_folder(self, folder_path, repo_id):
            return None

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_server_secret")
    alice = shared.roles.caller(ALICE)
    with pytest.raises(ValueError, match="Type your own Hugging Face token"):
        shared.push_to_hub(alices_adapter, "alice/voice", "", alice)
    assert calls == []
    shared.push_to_hub(alices_adapter, "alice/voice", "hf_alices_own", alice)
    shared.push_to_hub(alices_adapter, "owner/voice", "", shared.roles.caller(None, unlocked=True))
    assert calls == ["hf_alices_own", "hf_server_secret"]


def test_owner_password():
    roles = Roles(Settings(shared=True, owner_password="open sesame"))
    assert roles.unlock("open sesame") and not roles.unlock("open") and not roles.unlock("")
    assert not Roles(Settings(shared=True, owner_password="")).unlock("")
    assert roles.caller("w").owner is False and roles.caller("w", unlocked=True).owner
    assert Roles(Settings(shared=False)).caller("w").owner, "a local run's user is its owner"
    assert "open sesame" not in repr(Settings(owner_password="open sesame"))


@pytest.mark.parametrize(("value", "shared"), [("1", True), ("0", False), ("auto", False)])
def test_shared_setting(monkeypatch, value, shared):
    monkeypatch.setenv("PLAYGROUND_SHARED", value)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert Settings().shared is shared
    monkeypatch.setenv("SPACE_ID", "someone/playground")
    assert Settings().shared is (value != "0")


def test_cancel_stops_the_callers_own_job_never_anothers(runtime, tmp_path):
    """Cancel without a job id stops the caller's running or next job: another visitor's running job is neither
    stopped nor in the way; by id, a visitor may stop only its own."""
    from adapters.errors import UserError
    from playground.config import SAMPLE_DATA

    data = SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl"
    settings = runtime.settings.with_overrides(shared=True, owner_password="open sesame", home=tmp_path)
    service = FinetuneService(replace(runtime, settings=settings))
    alice, bob = service.roles.caller(ALICE), service.roles.caller(BOB)
    try:
        alices = service.launch(data, "alice", "quick demo", fit={"max_steps": 5000}, caller=alice)
        bobs = service.launch(data, "bob", "quick demo", fit={"max_steps": 5000}, caller=bob)  # waits behind hers
        # Each sees its own job on its card and of the other's only that it runs or waits: no name, data or loss.
        seen = service.shown_jobs(bob)
        assert seen.current.id == bobs.id and seen.mine_only
        rows = {row[0]: row for row in seen.rows}
        assert rows[bobs.id][1] == "bob" and alices.id not in rows
        assert rows["–"][1:3] == [OTHERS_JOB, service.jobs.view(alices.id).state] and "alice" not in str(seen.rows)
        assert service.shown_jobs(alice).current.id == alices.id and "bob" not in str(service.job_table(alice))
        stranger = service.shown_jobs(service.roles.caller("workspace-carol"))
        assert stranger.current is None and [row[1] for row in stranger.rows] == [OTHERS_JOB] * 2
        with pytest.raises(UserError, match="No fine-tune from this browser yet"):
            service.resume(service.roles.caller("workspace-carol"))
        assert service.status(alices.id, alice).id == alices.id
        with pytest.raises(UserError, match=f"No fine-tune job '{alices.id}'"):  # as if it did not exist
            service.status(alices.id, bob)
        with pytest.raises(UserError, match="No fine-tune job 'nope'"):
            service.status("nope", alice)
        everyone = service.shown_jobs(service.roles.caller(None, unlocked=True))
        assert {row[1] for row in everyone.rows} == {"alice", "bob"} and not everyone.mine_only
        with pytest.raises(UserError, match="Only the server's owner can cancel"):
            service.cancel(bob, alices.id)
        with pytest.raises(UserError, match="No fine-tune job 'nope'"):
            service.cancel(bob, "nope")
        assert "taken off the queue" in service.cancel(bob)  # his own, though hers runs
        assert service.jobs.view(bobs.id).state == "cancelled"
        assert service.jobs.view(alices.id).state in {"queued", "running"}
        with pytest.raises(UserError, match="No fine-tune launched from this browser is running or waiting"):
            service.cancel(bob)
        service.cancel(alice)
        assert service.jobs.wait(alices.id, timeout_s=180).state == "cancelled"
        with pytest.raises(UserError, match=r"^No fine-tune is running or waiting"):
            service.cancel(service.roles.caller(None, unlocked=True))
    finally:
        service.jobs.close()


def test_a_stored_measurement_is_tagged_for_its_browser_on_a_shared_demo_only(tmp_path):
    shared = Roles(Settings(home=tmp_path, shared=True))
    single = Roles(Settings(home=tmp_path, shared=False))
    mine, theirs = "m" * 32, "t" * 32
    tag = shared.tag(mine)
    assert len(tag) == 32 and tag not in (mine, shared.tag(theirs)) and shared.tag(mine) == tag
    assert shared.tag(None) == shared.tag("") == "" and single.tag(mine) == ""
    assert shared.may_see(tag, shared.caller(mine))
    assert not shared.may_see(tag, shared.caller(theirs)) and not shared.may_see(tag, shared.caller(None))
    assert not shared.may_see("", shared.caller(mine))  # untagged (the CLI's, or no workspace): the owner's only
    assert shared.may_see(tag, shared.caller(theirs, unlocked=True)) and shared.may_see("", shared.caller(None, True))
    assert single.may_see(tag, single.caller(None)) and single.may_see("", single.caller(theirs))
