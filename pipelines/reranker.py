"""The optional cross-encoder rerank stage: a folder or hub id → local cache → hub, or no reranker at all.

Without a reranker model the stage passes documents through and the page hides the option.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from haystack import Document, component
from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

from adapters.resolver import hub_reachable, hub_unavailable_reason

OFF = {"", "none", "off", "0"}
CANDIDATES_PER_RESULT = 4  # the rerank stage picks top-k out of this many times top-k fused candidates


@dataclass(frozen=True)
class RerankerChoice:
    ranker: SentenceTransformersSimilarityRanker | None
    name: str
    note: str  # why there is none, or where it came from

    @property
    def available(self) -> bool:
        return self.ranker is not None


def _cached(repo_id: str, local_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, local_files_only=local_only))


def resolve_reranker(spec: str, log: Callable[[str], None] = print) -> RerankerChoice:
    """Loads the cross-encoder `spec` names; never raises: a missing model means no rerank stage, said in one line."""
    spec = spec.strip()
    if spec.lower() in OFF:
        return RerankerChoice(None, "", "switched off (PLAYGROUND_RERANKER=none)")
    try:
        found = _locate(spec)
        if isinstance(found, str):
            return _none(spec, found, log)
        path, note = found
        ranker = SentenceTransformersSimilarityRanker(model=str(path), top_k=10, scale_score=True)
        ranker.warm_up()
    except Exception as error:  # hub errors span several lines: the first one says what went wrong
        first_line = (str(error).strip().splitlines() or [""])[0]
        return _none(spec, f"could not be loaded ({type(error).__name__}: {first_line})", log)
    return RerankerChoice(ranker, spec, note)


def _locate(spec: str) -> tuple[Path, str] | str:
    """The model's folder and where it came from, or why there is none (without asking an unreachable hub)."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return folder, "local folder"
    try:
        return _cached(spec, local_only=True), "from the local cache"
    except Exception:  # not cached; the hub is the next place to look
        pass
    if not hub_reachable():
        return f"not in the local cache and {hub_unavailable_reason()}"
    return _cached(spec, local_only=False), "downloaded from the hub"


def _none(spec: str, reason: str, log: Callable[[str], None]) -> RerankerChoice:
    log(f"reranker {spec}: {reason}; the rerank option is hidden")
    return RerankerChoice(None, spec, f"{spec}: {reason}")


@component
class OptionalRanker:
    """Reorders the fused candidates with a cross-encoder when asked and one is loaded; otherwise keeps the fused
    order. Either way it returns at most `top_k` documents; reranked ones carry `meta["rerank_score"]`."""

    def __init__(self, ranker: SentenceTransformersSimilarityRanker | None = None) -> None:
        self.ranker = ranker

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, documents: list[Document], top_k: int | None = None, enabled: bool = False
    ) -> dict[str, list[Document]]:
        if not enabled or self.ranker is None or not documents:
            return {"documents": documents[:top_k] if top_k is not None else documents}
        ranked = self.ranker.run(query=query, documents=documents, top_k=top_k)["documents"]
        return {"documents": [replace(d, meta={**d.meta, "rerank_score": d.score}) for d in ranked]}
