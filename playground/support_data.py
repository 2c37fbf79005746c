"""What the sentence-level support check compares with, bound to the running app: the retrieval embedder, each
adapter's training data (found from its registry record), and those answers embedded once per adapter.

An adapter's training data: a registered adapter names the job that trained it, whose spec names the data file and
the hold-out fraction; the job's seeded split is redone here, so the examples are the ones it trained on. The demo
adapter was trained on PLAYGROUND_FINETUNE_DATA (and on lessons generated at build time, which no file holds). Any
other adapter (a PEFT folder copied in by hand) has no recorded training data, and the page says so.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adapters import demo_model
from adapters.datasets import load_dataset, split_holdout
from adapters.jobs.run import JobSpec, file_sha256
from adapters.registry import AdapterRegistry
from pipelines.indexing import SentenceEmbedder
from playground.support import Embedder, Evidence, SupportChecker, SupportReport, SupportSettings, TrainingSet

if TYPE_CHECKING:
    from playground.compare import Comparison
    from playground.runtime import Runtime

SUPPORT_ARMS = ("rag", "finetuned", "hybrid")  # the base control is not checked: it reads and learnt nothing of ours


@dataclass(frozen=True)
class TrainingData:
    """Where an adapter's training examples are; `path` None when nothing records them (`note` says why)."""

    adapter: str
    path: Path | None
    holdout: float = 0.0  # the fraction its job held out; the seeded split is redone to leave it out
    sha256: str = ""  # the file's hash when it was trained on, if recorded
    note: str = ""


def training_data(adapter: str, registry: AdapterRegistry, jobs: Path, demo_data: Path | None) -> TrainingData:
    """`demo_data`: the demo adapter's dataset when the demo model answers (its adapter has no registry record)."""
    info = registry.get(adapter)
    if info is None or not info.job:
        if demo_data is not None and adapter == demo_model.DEMO_ADAPTER_NAME:
            note = "the demo adapter also learnt from reading lessons generated at build time, which no file holds"
            return TrainingData(adapter, demo_data, note=note)
        return TrainingData(adapter, None, note=f"Adapter {adapter} has no recorded training data (not trained here).")
    recorded = info.dataset
    sha256, file = str(recorded.get("sha256") or ""), str(recorded.get("file") or "")
    try:
        spec = JobSpec.read(jobs / info.job)
        return TrainingData(adapter, Path(spec.dataset), spec.holdout, sha256)
    except (OSError, ValueError, TypeError):  # the job's folder is gone: the page's upload copy may remain
        kept = jobs / "datasets" / sha256[:16] / file
        if sha256 and kept.is_file():
            examples, held = int(recorded.get("examples") or 0), int(recorded.get("holdout") or 0)
            return TrainingData(adapter, kept, held / examples if examples else 0.0, sha256)
    return TrainingData(adapter, None, note=f"The training data of adapter {adapter} ({file or 'unnamed'}) is gone.")


class TrainingSets:
    """An explicit cache: each adapter's training answers, embedded once and kept while its file is unchanged (the
    newest `size` adapters)."""

    def __init__(self, embedder: Embedder, size: int = 4) -> None:
        self.embedder = embedder
        self.size = size
        self._sets: OrderedDict[tuple, tuple[TrainingSet | None, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, data: TrainingData) -> tuple[TrainingSet | None, str]:
        """The embedded set, or None and why; and a note to show with it."""
        if data.path is None:
            return None, data.note
        try:
            stat = data.path.stat()
        except OSError:
            return None, f"The training data of adapter {data.adapter} ({data.path.name}) is gone."
        key = (data.adapter, str(data.path), stat.st_mtime_ns, stat.st_size, data.holdout)
        with self._lock:  # one embedding per adapter even when two pages ask at once
            if key not in self._sets:
                self._sets[key] = self._load(data)
                while len(self._sets) > self.size:
                    self._sets.popitem(last=False)
            self._sets.move_to_end(key)
            return self._sets[key]

    def _load(self, data: TrainingData) -> tuple[TrainingSet | None, str]:
        assert data.path is not None
        loaded = load_dataset(data.path)
        if not loaded.examples:
            return None, f"The training data of adapter {data.adapter} ({data.path.name}) has no readable examples."
        examples = split_holdout(loaded.examples, data.holdout)[0] if data.holdout else loaded.examples
        notes = [data.note] if data.note else []
        if data.sha256 and file_sha256(data.path) != data.sha256:
            notes.append(f"{data.path.name} changed after the adapter was trained")
        evidence = Evidence.of([example.answer for example in examples], self.embedder)
        lines = [example.line for example in examples]
        return TrainingSet(data.adapter, data.path.name, lines, evidence), "; ".join(notes)


class SupportService:
    """Marks the sentences of a finished comparison's RAG, fine-tuned and hybrid answers."""

    def __init__(self, runtime: Runtime, embedder: Embedder | None = None) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.settings = SupportSettings(settings.support_chunk_threshold, settings.support_training_threshold)
        embedder = embedder or SentenceEmbedder(runtime.embedder)
        self.checker = SupportChecker(embedder, self.settings)
        self.sets = TrainingSets(embedder)
        self.registry = AdapterRegistry(settings.home / "adapters")
        self.jobs = settings.home / "jobs"

    def check(self, state: Comparison) -> SupportReport:
        arms = [arm for arm in SUPPORT_ARMS if arm in state.rows]
        adapter = next((state.adapters[arm] for arm in arms if state.adapters.get(arm)), None) or state.model.adapter
        training, note = None, "No LoRA adapter: no training examples to compare with."
        if adapter:
            demo = self.runtime.settings.finetune_data if self.runtime.model.is_demo else None
            training, note = self.sets.get(training_data(adapter, self.registry, self.jobs, demo))
        answers = {arm: state.texts.get(arm, "") for arm in arms}
        return self.checker.check(answers, state.chunks, training, note, state.errors)
