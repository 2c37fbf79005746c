"""Every `gradio_client` example of the README runs, as it stands, against a local server, and the API answers what
the README says: a workspace token, the caller's own chunks retrieved, a fine-tune followed and stopped, ratings and
advice."""

from __future__ import annotations

import re
import shutil
import time

import pytest

from playground.config import PROJECT_ROOT, SAMPLE_DATA

NOTE = "The Orbit 9 lantern costs $77 and runs 40 hours on one charge."


def _examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (PROJECT_ROOT / "README.md").read_text(), flags=re.DOTALL)
    return [block for block in blocks if "gradio_client" in block]


@pytest.fixture
def in_folder(tmp_path, monkeypatch):
    """The files the examples name, in the folder they run from."""
    (tmp_path / "my-notes.md").write_text(f"# Orbit 9 lantern\n\n{NOTE}\n")
    shutil.copy(SAMPLE_DATA / "finetune" / "formats" / "sharegpt.jsonl", tmp_path / "my-data.jsonl")
    (tmp_path / "my-questions.csv").write_text(
        "question,reference,fact\n"
        "How much does the Summit 2 tent cost?,The Summit 2 tent costs $289.,$289\n"
        "What does the Orbit 9 lantern cost?,It costs $77.,$77\n"
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_readme_shows_the_api_for_every_action():
    called = set(re.findall(r'api_name="(/\w+)"', "".join(_examples())))
    assert called >= {
        "/compare", "/upload", "/list_documents", "/delete_document", "/finetune_start", "/finetune_status",
        "/finetune_cancel", "/list_adapters", "/evaluate", "/freshness", "/arena", "/vote", "/leaderboard", "/advise",
    }  # fmt: skip


def test_every_readme_example_runs_against_a_local_server(url, in_folder):
    found: list[dict] = []
    for block in _examples():
        namespace: dict = {"url": url}
        exec(compile(block, "README.md", "exec"), namespace)  # as a reader would paste it
        found.append(namespace)
    api = next(n for n in found if "token" in n)
    client = api["client"]
    for _ in range(360):  # the example's job ends (cancelled) before the next tests: it would hog the CPU
        state = client.predict(api["job"]["id"], api_name="/finetune_status")["state"]
        if state in {"completed", "cancelled", "failed"}:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the example's fine-tune was still running three minutes after the example cancelled it")
    assert api["uploaded"]["files"][0]["status"] == "indexed" and api["files"][0]["file"] == "my-notes.md"
    private = [chunk for chunk in api["mine"]["chunks"] if chunk["private"]]
    assert private and "Orbit 9" in private[0]["content"], "compare did not read the caller's own file"
    marks = [s["mark"] for found in api["mine"]["support"]["answers"].values() for s in found["sentences"]]
    assert marks and set(marks) <= {"chunk", "training", "none"}
    assert api["removed"]["deleted_chunks"] >= 1 and api["removed"]["files"] == []
    assert api["job"]["id"] and api["status"]["id"] == api["job"]["id"]
    assert "stops after its current step" in api["stopped"] or "taken off the queue" in api["stopped"]
    report = api["report"]
    assert report["questions"] == 2 and set(report["metrics"]) == {"rag", "finetuned"}
    assert len(report["rows"]) == 4 and {row["arm"] for row in report["rows"]} == {"rag", "finetuned"}
    assert report["settings"]["questions"]["name"] == "my-questions.csv"
    drill = api["drill"]
    assert drill["change"]["old"] == "$319" and drill["retrieved"] and drill["retrieved"][0]["new_fact_read"]
    assert {answer["arm"] for answer in drill["answers"]} == {"base", "rag", "finetuned", "hybrid"}
    match, revealed = api["match"], api["revealed"]
    assert set(match) == {"match", "question", "a", "b"}, "the match must not name its arms before the vote"
    assert revealed["vote"] == "a" and revealed["arm_a"] != revealed["arm_b"]
    assert (isinstance(api["adapters"], list) and "ratings" in str(api["ratings"]).lower()) or api[
        "ratings"
    ] is not None
    assert api["advice"]["approach"] in {"rag", "finetune", "hybrid"} and api["advice"]["reasons"]


def test_another_workspace_never_sees_the_callers_files(url, in_folder):
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    mine = client.predict([handle_file("my-notes.md")], api_name="/upload")["workspace"]
    other = client.predict([handle_file("my-data.jsonl")], api_name="/upload")["workspace"]
    assert other != mine
    assert [f["file"] for f in client.predict(other, api_name="/list_documents")] == ["my-data.jsonl"]
    answer = client.predict("What does the Orbit 9 lantern cost?", workspace=other, api_name="/compare")
    assert not any("Orbit 9" in chunk["content"] for chunk in answer["chunks"])


def test_a_path_on_the_server_is_refused(url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="handle_file"):
        Client(url, verbose=False).predict([{"path": "/etc/passwd"}], api_name="/upload")
