"""Start-up: resolve and load the models, index the knowledge base, build the query pipeline."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

from haystack import Pipeline
from haystack.document_stores.types import DocumentStore

from adapters import demo_model
from adapters.datasets import load_chat_jsonl
from adapters.engine import DecodingSettings, Engine
from adapters.errors import UserError
from adapters.registry import AdapterRegistry
from adapters.resolver import ResolvedModel, resolve_model
from adapters.served import ServedEngine
from pipelines.embedder import EmbedderInfo, resolve_embedder
from pipelines.fast_store import FastDocumentStore
from pipelines.indexing import (
    ChunkSettings,
    SentenceEmbedder,
    chunks_of,
    knowledge_base_files,
    load_or_index,
    sources_of,
    split_files,
)
from pipelines.prompts import plain_messages, rag_messages
from pipelines.rag import query_pipeline
from pipelines.reranker import RerankerChoice, resolve_reranker
from pipelines.store import STORE_KINDS, copy_to_qdrant
from playground.config import SAMPLE_DATA, Settings
from playground.demo_limits import DemoLimits
from playground.knowledge_base import add_knowledge_base, knowledge_base_path
from playground.workspaces import Workspaces
from playground.zero_gpu import zero_gpu

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    base: str
    source: str  # hub, local, demo, or served (an OpenAI-compatible server answers; `note` names it)
    adapter: str | None
    note: str = ""
    path: str = ""  # the base model's folder (or hub id), what a fine-tune of this base loads

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"


@dataclass
class Runtime:
    settings: Settings
    engine: Engine | ServedEngine
    embedder: EmbedderInfo
    store: DocumentStore  # the shared knowledge base: ours, or Qdrant's
    pipeline: Pipeline
    model: ModelInfo
    workspaces: Workspaces
    reranker: RerankerChoice
    startup: dict[str, float] = field(default_factory=dict)
    demo_build: dict = field(default_factory=dict)  # the demo model's build figures, when it answers

    @cached_property
    def shared_sources(self) -> list[str]:
        """The shared knowledge base's files: read-only while the app runs, so listed once (a full scan)."""
        return sources_of(self.store)

    def decoding(self, **overrides: object) -> DecodingSettings:
        values: dict[str, object] = {
            "max_new_tokens": self.settings.max_new_tokens,
            "min_new_tokens": self.settings.min_new_tokens,
            "temperature": self.settings.temperature,
            "seed": self.settings.seed,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return DecodingSettings(**values)  # type: ignore[arg-type]


def _timed(timings: dict[str, float], name: str, started: float) -> None:
    timings[name] = round(time.perf_counter() - started, 3)


@dataclass
class _Base:
    """The resolved base model, the sample knowledge base it was settled against, and the demo model if built."""

    model: ResolvedModel
    store: FastDocumentStore
    embedder: EmbedderInfo
    chunking: ChunkSettings
    demo: demo_model.DemoModel | None


def demo_corpus(settings: Settings) -> demo_model.DemoCorpus:
    """What the demo model is built from: the sample documents, cut and embedded as this product cuts and retrieves
    them with its default embedder (whichever one a user configures, the kept model fits), the fine-tuning set and the
    RAG prompt."""
    embedder = resolve_embedder(None)
    return demo_model.DemoCorpus(
        knowledge_base_files(SAMPLE_DATA / "knowledge_base"),
        partial(split_files, embedder=embedder, chunks=ChunkSettings(embedder.max_chunk_tokens)),
        load_chat_jsonl(settings.finetune_data),
        rag_messages,
        cut=lambda files, size, overlap: split_files(files, embedder, ChunkSettings(size, overlap)),
        embed=SentenceEmbedder(embedder).embed,
        embedder=embedder.name,
    )


def _index(settings: Settings, timings: dict[str, float]) -> tuple[FastDocumentStore, EmbedderInfo, ChunkSettings]:
    """The sample (or configured) knowledge base, loaded or indexed with the embedder and chunk size chosen."""
    embedder = resolve_embedder(settings.embedder or None)
    chunking = ChunkSettings(settings.chunk_size or embedder.max_chunk_tokens, settings.chunk_overlap)
    if chunking.size > embedder.max_chunk_tokens:
        logger.warning(
            "chunks of %d tokens exceed the %d tokens %s reads; the rest of each chunk will not be embedded",
            chunking.size,
            embedder.max_chunk_tokens,
            embedder.name,
        )
    started = time.perf_counter()
    store, built = load_or_index(settings.knowledge_base, settings.home / "indexes", embedder, chunking)
    _timed(timings, "index_build_s" if built else "index_load_s", started)
    logger.info("knowledge base: %d chunks from %s", store.count_documents(), settings.knowledge_base)
    return store, embedder, chunking


def _resolve_base(settings: Settings, timings: dict[str, float]) -> _Base:
    if settings.demo_size not in demo_model.DEMO_SIZES:
        sizes = ", ".join(demo_model.DEMO_SIZES)
        raise UserError(f"PLAYGROUND_DEMO_SIZE is {settings.demo_size!r}; expected one of {sizes}")
    store, embedder, chunking = _index(settings, timings)

    demo_built: list[demo_model.DemoModel] = []

    def build_demo() -> tuple[Path, str]:
        corpus = demo_corpus(settings)
        began = time.perf_counter()
        spec = demo_model.DEMO_SIZES[settings.demo_size]
        demo = demo_model.load_or_build(settings.home, corpus, spec, rebuild=settings.rebuild_demo)
        _timed(timings, "demo_model_s", began)
        demo_built.append(demo)
        return demo.base_path, demo_model.DEMO_MODEL_NAME

    base = resolve_model(settings.base_model, build_demo)
    return _Base(base, store, embedder, chunking, demo_built[0] if demo_built else None)


def resolve_base(settings: Settings) -> ResolvedModel:
    """The base model `start` would load (building the demo model when it is the one), without loading it."""
    return _resolve_base(settings, {}).model


def start(settings: Settings) -> Runtime:
    _check_store_settings(settings)
    DemoLimits.of(settings)  # a limit out of range fails before minutes of loading
    if settings.generator_url:
        return _start_served(settings)
    if settings.batch_rows < 1:
        raise UserError(f"PLAYGROUND_BATCH_ROWS must be 1 or more, got {settings.batch_rows}")
    timings: dict[str, float] = {}
    resolved = _resolve_base(settings, timings)
    base, store, embedder, chunking = resolved.model, resolved.store, resolved.embedder, resolved.chunking
    # After the demo model is settled: it is built from the sample documents alone.
    _add_knowledge_base(settings, store)
    started = time.perf_counter()
    engine = Engine.load(
        base.path,
        name=base.name,
        device=settings.device or None,
        strategy=settings.side_by_side,
        batch_rows=settings.batch_rows,
    )
    _timed(timings, "model_load_s", started)

    adapter_name = _attach_adapter(engine, settings, base, resolved.demo)
    if settings.side_by_side == "auto" and zero_gpu():
        # No GPU outside a comparison's call to measure with; batching pays on a GPU (see the README).
        engine.strategy = "batched"
    elif settings.side_by_side == "auto":
        started = time.perf_counter()
        _calibrate(engine, store)
        _timed(timings, "side_by_side_calibration_s", started)
    retrieval = _retrieval(settings, store, embedder, chunking, engine, timings)
    model = ModelInfo(base.name, base.source, adapter_name, base.note, str(base.path))
    demo_build = resolved.demo.info if resolved.demo is not None else {}
    return retrieval.runtime(settings, engine, embedder, model, timings, demo_build)


def _start_served(settings: Settings) -> Runtime:
    """An OpenAI-compatible server answers (PLAYGROUND_GENERATOR_URL): no local model is loaded or calibrated; the
    knowledge base, embedder, reranker and query pipeline are built as for the built-in engine."""
    timings: dict[str, float] = {}
    started = time.perf_counter()  # the server first: a wrong URL fails before minutes of indexing
    engine = ServedEngine.connect(
        settings.generator_url, settings.generator_model, settings.generator_api_key, base_model=settings.base_model
    )
    _timed(timings, "generator_connect_s", started)
    logger.info("generator: %s %s", engine.name, engine.server.describe())
    if engine.files_note:
        logger.warning("no local tokenizer or config for the served model: %s", engine.files_note)
    if engine.name != settings.base_model:
        logger.warning(
            "the server answers with %s; fine-tunes train on PLAYGROUND_BASE_MODEL=%s: name the same model there so "
            "the adapters trained here fit the server",
            engine.name,
            settings.base_model,
        )
    adapter = _served_adapter(engine, settings)
    store, embedder, chunking = _index(settings, timings)
    _add_knowledge_base(settings, store)
    retrieval = _retrieval(settings, store, embedder, chunking, engine, timings)
    model = ModelInfo(engine.name, "served", adapter, engine.server.describe(), settings.base_model)
    return retrieval.runtime(settings, engine, embedder, model, timings)


def _served_adapter(engine: ServedEngine, settings: Settings) -> str | None:
    """PLAYGROUND_ADAPTER (a model the server lists, or a folder or registered adapter, registered with the server),
    else the first adapter the server lists."""
    if settings.adapter and settings.adapter in engine.adapters:
        return settings.adapter
    if settings.adapter:
        path = adapter_folder(settings.adapter, settings.home / "adapters")
        engine.load_adapter(path.name, path)
        return path.name
    if engine.listed:
        return engine.listed[0]
    logger.info("the server at %s lists no LoRA adapter: the fine-tuned and hybrid panes stay empty", engine.url)
    return None


def _add_knowledge_base(settings: Settings, store: FastDocumentStore) -> None:
    added = add_knowledge_base(settings, store)
    if added:
        logger.info("knowledge base: %d more chunks from %s", added, knowledge_base_path(settings))


@dataclass
class _Retrieval:
    store: DocumentStore
    workspaces: Workspaces
    reranker: RerankerChoice
    pipeline: Pipeline

    def runtime(
        self,
        settings: Settings,
        engine: Engine | ServedEngine,
        embedder: EmbedderInfo,
        model: ModelInfo,
        timings: dict[str, float],
        demo_build: dict | None = None,
    ) -> Runtime:
        """The runtime of this retrieval and the model that answers."""
        return Runtime(
            settings,
            engine,
            embedder,
            self.store,
            self.pipeline,
            model,
            self.workspaces,
            self.reranker,
            timings,
            demo_build or {},
        )


def _retrieval(
    settings: Settings,
    store: FastDocumentStore,
    embedder: EmbedderInfo,
    chunking: ChunkSettings,
    engine: Engine | ServedEngine,
    timings: dict[str, float],
) -> _Retrieval:
    """The shared store (ours, or a Qdrant copy), the browsers' workspaces, the reranker and the query pipeline."""
    shared: DocumentStore = store
    if settings.document_store == "qdrant":
        started = time.perf_counter()
        shared = copy_to_qdrant(store, settings.qdrant_url)
        _timed(timings, "qdrant_sync_s", started)
        logger.info("knowledge base: retrieval from Qdrant at %s", settings.qdrant_url)
    limits = DemoLimits.of(settings)
    workspaces = Workspaces(
        settings.home / "workspaces",
        embedder,
        chunking,
        limits=limits.ingest,
        idle_s=limits.idle_s,
        max_chunks=limits.workspace_chunks,
    )
    started = time.perf_counter()
    reranker = resolve_reranker(settings.reranker)
    _timed(timings, "reranker_load_s", started)
    pipeline = query_pipeline(
        shared,
        embedder,
        engine,
        top_k=settings.top_k,
        private=workspaces.store,
        keyword_stats=store,
        reranker=reranker.ranker,
    )
    started = time.perf_counter()
    pipeline.warm_up()
    _timed(timings, "pipeline_warm_up_s", started)
    return _Retrieval(shared, workspaces, reranker, pipeline)


def _check_store_settings(settings: Settings) -> None:
    if settings.document_store not in STORE_KINDS:
        kinds = ", ".join(STORE_KINDS)
        raise UserError(f"PLAYGROUND_DOCUMENT_STORE is {settings.document_store!r}; expected one of {kinds}")
    if settings.document_store == "qdrant" and not settings.qdrant_url:
        raise UserError(
            "PLAYGROUND_DOCUMENT_STORE is qdrant but PLAYGROUND_QDRANT_URL is empty: give the server's URL "
            "(e.g. http://localhost:6333), or a folder or :memory: for Qdrant's local mode"
        )


def _attach_adapter(
    engine: Engine,
    settings: Settings,
    base: ResolvedModel,
    demo: demo_model.DemoModel | None,
) -> str | None:
    """Load the adapter asked for (a folder or a registered name), else the demo adapter, else the newest
    one trained on this base."""
    if settings.adapter:
        path = adapter_folder(settings.adapter, settings.home / "adapters")
        engine.load_adapter(path.name, path)
        return path.name
    if demo is not None:
        engine.load_adapter(demo_model.DEMO_ADAPTER_NAME, demo.adapter_path)
        return demo_model.DEMO_ADAPTER_NAME
    trained = AdapterRegistry(settings.home / "adapters").trained_on(base.name, str(base.path))
    if trained:
        folder = Path(trained[0].path)
        engine.load_adapter(folder.name, folder)
        return folder.name
    logger.info("no LoRA adapter trained on %s yet: the fine-tuned and hybrid panes stay empty", base.name)
    return None


def adapter_folder(spec: str, registry: Path) -> Path:
    """An adapter given as a folder or as the name of one registered under `registry`; never the hub."""
    path = Path(spec).expanduser()
    for candidate in (path, registry / spec):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    known = sorted(p.parent.name for p in registry.glob("*/adapter_config.json"))
    listed = f"registered: {', '.join(known)}" if known else f"none is registered under {registry}"
    raise UserError(f"no LoRA adapter folder or registered adapter named {spec!r} ({listed})")


def _calibrate(engine: Engine, store: FastDocumentStore) -> None:
    """Measure whether one mixed-adapter batch or arms taking turns alone is faster for this model."""
    chunks = chunks_of(store)[:3]
    question = "What does the warranty cover?"
    strategy = engine.calibrate(rag_messages(question, chunks), plain_messages(question))
    if engine.calibration:
        figures = ", ".join(f"{k} {v:.3f}" for k, v in engine.calibration.items())
        logger.info("side by side: %s is faster for this model (%s)", strategy, figures)
