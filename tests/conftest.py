"""Fixtures: a tiny demo model built from the sample data in seconds, shared by the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach for the hub: everything they load is built here or ships in a package.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from playground.compare import CompareService
from playground.config import Settings
from playground.runtime import Runtime, start


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("playground-home")


@pytest.fixture(scope="session")
def settings(home: Path) -> Settings:
    return Settings(
        home=home, base_model="Qwen/Qwen2.5-0.5B-Instruct", demo_size="tiny", max_new_tokens=16, min_new_tokens=6
    )


@pytest.fixture(scope="session")
def runtime(settings: Settings) -> Runtime:
    return start(settings, log=lambda message: None)


@pytest.fixture(scope="session")
def service(runtime: Runtime) -> CompareService:
    return CompareService(runtime)
