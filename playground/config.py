"""Settings, read in one place from environment variables (and overridden by CLI flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adapters.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = PROJECT_ROOT / "sample_data"
DEFAULT_BASE_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
DEFAULT_RERANKER = "cross-encoder/ms-marco-MiniLM-L-6-v2"  # "none" switches the rerank stage off


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_number(name: str, default: float, kind: type) -> Any:
    raw = _env(name, str(default))
    try:
        return kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise UserError(f"environment variable {name} must be {noun}, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    return _env_number(name, default, int)


def _env_float(name: str, default: float) -> float:
    return _env_number(name, default, float)


def _shared_from_env() -> bool:
    value = _env("PLAYGROUND_SHARED", "auto").lower()
    if value == "auto":
        return bool(os.environ.get("SPACE_ID"))  # set by Hugging Face Spaces
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise UserError(f"environment variable PLAYGROUND_SHARED must be auto, 1 or 0, got {value!r}")


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(_env("PLAYGROUND_HOME", ".playground")))
    base_model: str = field(default_factory=lambda: _env("PLAYGROUND_BASE_MODEL", DEFAULT_BASE_MODEL))
    adapter: str = field(default_factory=lambda: _env("PLAYGROUND_ADAPTER", ""))
    embedder: str = field(default_factory=lambda: _env("PLAYGROUND_EMBEDDER", ""))
    knowledge_base: Path = field(
        default_factory=lambda: Path(_env("PLAYGROUND_KNOWLEDGE_BASE", str(SAMPLE_DATA / "knowledge_base")))
    )
    finetune_data: Path = field(
        default_factory=lambda: Path(_env("PLAYGROUND_FINETUNE_DATA", str(SAMPLE_DATA / "finetune" / "train.jsonl")))
    )
    eval_data: Path = field(
        default_factory=lambda: Path(_env("PLAYGROUND_EVAL_DATA", str(SAMPLE_DATA / "eval" / "questions.jsonl")))
    )
    # General text and questions outside any fine-tuning domain: the forgetting check (empty: no check)
    general_data: str = field(default_factory=lambda: _env("PLAYGROUND_GENERAL_DATA", str(SAMPLE_DATA / "general")))
    # Small chunks: retrieval then picks the sentence, and a small model reads a few sentences rather than a page
    # (the sample questions' fact was in the top three 254-token chunks 52 times in 52, 48-token ones 45, but those
    # were 2,994 characters long on average, these 533). No overlap: chunks are whole sentences, an overlap repeats
    # them. 0: what the embedder reads (254 tokens for MiniLM).
    chunk_size: int = field(default_factory=lambda: _env_int("PLAYGROUND_CHUNK_SIZE", 48))
    chunk_overlap: int = field(default_factory=lambda: _env_int("PLAYGROUND_CHUNK_OVERLAP", 0))
    top_k: int = field(default_factory=lambda: _env_int("PLAYGROUND_TOP_K", 3))
    max_new_tokens: int = field(default_factory=lambda: _env_int("PLAYGROUND_MAX_NEW_TOKENS", 96))
    min_new_tokens: int = field(default_factory=lambda: _env_int("PLAYGROUND_MIN_NEW_TOKENS", 1))
    temperature: float = field(default_factory=lambda: _env_float("PLAYGROUND_TEMPERATURE", 0.0))
    seed: int = field(default_factory=lambda: _env_int("PLAYGROUND_SEED", 0))
    demo_size: str = field(default_factory=lambda: _env("PLAYGROUND_DEMO_SIZE", "small"))
    device: str = field(default_factory=lambda: _env("PLAYGROUND_DEVICE", ""))
    reranker: str = field(default_factory=lambda: _env("PLAYGROUND_RERANKER", DEFAULT_RERANKER))
    document_store: str = field(default_factory=lambda: _env("PLAYGROUND_DOCUMENT_STORE", "fast"))
    qdrant_url: str = field(default_factory=lambda: _env("PLAYGROUND_QDRANT_URL", ""))
    # How the arms run side by side: auto (measured at start), interleaved, sequential or batched.
    side_by_side: str = field(default_factory=lambda: _env("PLAYGROUND_SIDE_BY_SIDE", "auto"))
    # A shared demo (strangers use one server): auto = on a Hugging Face Space (SPACE_ID is set), else off.
    shared: bool = field(default_factory=lambda: _shared_from_env())
    # Unlocks the owner's actions in a shared demo's page; empty: nobody is the owner there.
    owner_password: str = field(default_factory=lambda: os.environ.get("PLAYGROUND_OWNER_PASSWORD", ""), repr=False)
    # Comparisons (page and API) that may wait for a slot; one more is refused at once with a "try again" estimate.
    queue_size: int = field(default_factory=lambda: _env_int("PLAYGROUND_QUEUE_SIZE", 16))
    # Comparisons that run at once: their retrieval runs side by side, and their generation shares the model's batches
    # (see batch_rows); more wait in the queue.
    concurrency: int = field(default_factory=lambda: _env_int("PLAYGROUND_CONCURRENCY", 8))
    # Rows (arms) one decoding batch may hold: comparisons that wait while the model answers others join its next
    # batch (micro-batching; greedy ones with the same limits). 1: each comparison runs alone.
    batch_rows: int = field(default_factory=lambda: _env_int("PLAYGROUND_BATCH_ROWS", 32))
    # Sentence-level support (Compare tab): the cosine a sentence needs to a chunk's or a training answer's sentence
    # (chosen with `python -m playground.bench.support_thresholds`; see the README).
    support_chunk_threshold: float = field(default_factory=lambda: _env_float("PLAYGROUND_SUPPORT_CHUNK", 0.7))
    support_training_threshold: float = field(default_factory=lambda: _env_float("PLAYGROUND_SUPPORT_TRAINING", 0.75))
    # A served generator instead of the built-in engine: an OpenAI-compatible server's base URL (e.g. vLLM started
    # with --enable-lora, http://localhost:8000/v1); its base model's name there (empty: the first model it lists that
    # is not a LoRA adapter) and its API key (vLLM's --api-key).
    generator_url: str = field(default_factory=lambda: _env("PLAYGROUND_GENERATOR_URL", ""))
    generator_model: str = field(default_factory=lambda: _env("PLAYGROUND_GENERATOR_MODEL", ""))
    generator_api_key: str = field(
        default_factory=lambda: os.environ.get("PLAYGROUND_GENERATOR_API_KEY", "").strip(), repr=False
    )

    # A public demo's limits (playground.demo_limits; the README's "Share it"): one uploaded file, files per upload,
    # chunks one browser keeps, hours an idle browser's files are kept, steps of one fine-tune and fine-tunes running
    # or waiting at once (0: no limit).
    max_upload_mb: int = field(default_factory=lambda: _env_int("PLAYGROUND_MAX_UPLOAD_MB", 50))
    max_upload_files: int = field(default_factory=lambda: _env_int("PLAYGROUND_MAX_UPLOAD_FILES", 5000))
    max_workspace_chunks: int = field(default_factory=lambda: _env_int("PLAYGROUND_MAX_WORKSPACE_CHUNKS", 50_000))
    session_idle_hours: float = field(default_factory=lambda: _env_float("PLAYGROUND_SESSION_IDLE_HOURS", 6.0))
    max_train_steps: int = field(default_factory=lambda: _env_int("PLAYGROUND_MAX_TRAIN_STEPS", 0))
    max_jobs: int = field(default_factory=lambda: _env_int("PLAYGROUND_MAX_JOBS", 0))

    rebuild_demo: bool = False  # `prepare --rebuild-demo`: build the demo model anew (and the shipped copy)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
