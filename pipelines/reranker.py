"""The optional cross-encoder rerank stage: a folder or hub id → local cache → hub, or no reranker at all.

Without a reranker model the stage passes documents through and the page hides the option.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from haystack import Document, component
from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

from adapters.resolver import ModelUnavailable, locate_model

logger = logging.getLogger(__name__)

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


def resolve_reranker(spec: str) -> RerankerChoice:
    """Loads the cross-encoder `spec` names; a model that cannot be had or loaded means no rerank stage, logged in
    one line (the page hides the option and says why)."""
    spec = spec.strip()
    if spec.lower() in OFF:
        return RerankerChoice(None, "", "switched off (PLAYGROUND_RERANKER=none)")
    try:
        found = locate_model(spec, markers=("config.json", "modules.json"))
    except ModelUnavailable as unavailable:
        return _none(spec, unavailable.after_colon)
    ranker = SentenceTransformersSimilarityRanker(model=str(found.path), top_k=10, scale_score=True)
    try:
        ranker.warm_up()
    except (OSError, ValueError) as error:  # a broken or foreign folder; its message may span several lines
        first_line = (str(error).strip().splitlines() or [""])[0]
        return _none(spec, f"could not be loaded ({type(error).__name__}: {first_line})")
    return RerankerChoice(ranker, spec, found.note)


def _none(spec: str, reason: str) -> RerankerChoice:
    logger.warning("reranker %s: %s; the rerank option is hidden", spec, reason)
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
