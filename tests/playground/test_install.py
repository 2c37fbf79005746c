"""`pip install .` installs the product with a `playground` command that works from any folder: code, the demo model's
kept weights and the sample data resolve against the installed package, runtime data goes under PLAYGROUND_HOME."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from playground.config import PROJECT_ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The repository's tracked files (as a clone has them) installed into a folder of their own."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        if (PROJECT_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, source / name)
    site = root / "site"
    # The dependencies are this environment's; the build backend (setuptools) too, so it installs offline.
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site),
         str(source)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "PLAYGROUND_RERANKER": "none"}
    env["PLAYGROUND_HOME"] = str(cwd / "home")
    env.pop("PLAYGROUND_BASE_MODEL", None)
    return subprocess.run([*args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_playground_command_answers_from_any_folder(installed, tmp_path):
    command = installed / "bin" / "playground"
    assert command.is_file()
    shown = _run(installed, tmp_path, str(command), "--help")
    assert shown.returncode == 0 and "compare" in shown.stdout
    done = _run(installed, tmp_path, str(command), "compare", "How much does the Summit 2 tent cost?", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["model"]["source"] == "demo" and result["chunks"][0]["source"] == "summit-2-tent.md"
    assert "$249" in result["answers"]["rag"]["text"]
    assert (tmp_path / "home" / "indexes").is_dir(), "runtime data goes under PLAYGROUND_HOME"
    where = _run(installed, tmp_path, sys.executable, "-c", "import playground; print(playground.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(installed), "the installed package answered, not the checkout"


def test_python_dash_m_keeps_working(installed, tmp_path):
    shown = _run(installed, tmp_path, sys.executable, "-m", "playground", "--help")
    assert shown.returncode == 0 and "bench" in shown.stdout


def test_the_package_depends_on_what_requirements_pin():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    pins = re.findall(r"^([A-Za-z0-9_.-]+==\S+)$", (PROJECT_ROOT / "requirements-base.txt").read_text(), re.MULTILINE)
    assert sorted(d for d in project["dependencies"] if not d.startswith("torch")) == sorted(pins)
    (torch,) = [Requirement(d) for d in project["dependencies"] if d.startswith("torch")]
    for requirements in ("requirements.txt", "requirements-gpu.txt"):  # the CPU and the CUDA set's torch
        pinned = re.search(r"^torch==(\S+)$", (PROJECT_ROOT / requirements).read_text(), re.MULTILINE)
        assert pinned and torch.specifier.contains(pinned.group(1)), f"{requirements}'s torch is outside {torch}"
