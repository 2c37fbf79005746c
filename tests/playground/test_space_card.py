"""The repository runs as a Hugging Face Space as it is: the README's front matter is a valid Space card whose SDK,
versions and entry point match what the repository installs and runs."""

from __future__ import annotations

import re
import tomllib

from huggingface_hub import SpaceCard

from playground.config import PROJECT_ROOT

SPACE_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}  # what the hub accepts


def _pin(package: str) -> str:
    text = (PROJECT_ROOT / "requirements-base.txt").read_text()
    found = re.search(rf"^{re.escape(package)}==(\S+)$", text, flags=re.MULTILINE)
    assert found, f"{package} is not pinned in requirements-base.txt"
    return found.group(1)


def test_the_readme_front_matter_is_a_space_card_that_matches_the_repository():
    card = SpaceCard.load(PROJECT_ROOT / "README.md")
    data = card.data.to_dict()
    assert data["sdk"] == "gradio"
    assert data["sdk_version"] == _pin("gradio"), "the Space would run another Gradio than the one pinned"
    assert (PROJECT_ROOT / data["app_file"]).is_file() and data["app_file"] == "app.py"
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == f">={data['python_version']}"
    assert 0 < len(data["short_description"]) <= 60  # the hub refuses longer ones
    assert {data["colorFrom"], data["colorTo"]} <= SPACE_COLORS
    assert data["title"] and data["emoji"] and isinstance(data["tags"], list) and data["tags"]
    assert card.text.lstrip().startswith("# RAG or fine-tuning?"), "the README itself follows the card"


def test_the_space_installs_from_the_requirements_file_and_serves_on_its_port():
    """A Space installs `requirements.txt` and runs `python app.py`: the file must reach the lock, the app the port."""
    requirements = (PROJECT_ROOT / "requirements.txt").read_text()
    assert "-r requirements-base.txt" in requirements
    assert "-c constraints.txt" in (PROJECT_ROOT / "requirements-base.txt").read_text()
    app = (PROJECT_ROOT / "app.py").read_text()
    assert '"--host", "0.0.0.0"' in app and 'os.environ.get("PORT", "7860")' in app
