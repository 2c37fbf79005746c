"""Retrieval modes as data: which stages a mode runs, how their lists become one, and its label on the page.

A stage is one kind of search (keyword or dense), run over the shared store and the asking session's own; a mode
is one or more stages, joined by rank fusion when there are several. `pipelines.rag` builds a mode's pipeline and
its inputs from these fields alone, so a new mode is one member of `RetrievalMode` (a new kind of search is one
member of `Stage`, plus its search in each store's retriever). Reranking is an option on top of any mode.
"""

from __future__ import annotations

from enum import Enum

from adapters.errors import UserError

FUSED = "fused"  # the score key (and component) of the joined list, in a mode of several stages
RERANK = "rerank"  # the score key the optional cross-encoder adds


class Stage(Enum):
    """One kind of search. The value names its components in the query pipeline and its score on a chunk
    (`meta["scores"]`); `embedded`: it searches by the question's embedding rather than its words."""

    KEYWORD = ("bm25", "BM25", "keyword match (higher = more of the question's words; no fixed scale)", False)
    DENSE = ("dense", "dense", "cosine similarity of the embeddings (−1…1)", True)

    label: str  # the score's name on the page
    meaning: str  # what the score says, for the page's legend
    embedded: bool

    def __new__(cls, key: str, label: str, meaning: str, embedded: bool) -> Stage:
        member = object.__new__(cls)
        member._value_ = key
        member.label, member.meaning, member.embedded = label, meaning, embedded
        return member


class RetrievalMode(Enum):
    """What RAG reads: the stages that run, in order, and how their lists are joined (a join mode of Haystack's
    `DocumentJoiner`; None: one stage, whose list is the result as it is). The value is what the command line, the
    API and the page's radio take. (Haystack is not imported here: the command line reads this before it loads.)"""

    FUSED = ("fused", "BM25 + dense, fused", (Stage.KEYWORD, Stage.DENSE), "reciprocal_rank_fusion")
    KEYWORD = ("keyword", "BM25 only", (Stage.KEYWORD,), None)
    DENSE = ("dense", "Dense only", (Stage.DENSE,), None)

    label: str  # the radio button's label on the page
    stages: tuple[Stage, ...]
    join: str | None

    def __new__(cls, value: str, label: str, stages: tuple[Stage, ...], join: str | None) -> RetrievalMode:
        if not stages or (join is None) != (len(stages) == 1):
            raise ValueError(f"retrieval mode {value!r}: several stages need a join, a single one none")
        member = object.__new__(cls)
        member._value_ = value
        member.label, member.stages, member.join = label, stages, join
        return member

    @property
    def embedded(self) -> bool:
        """Whether the question is embedded: only modes with a dense stage pay for the embedding model."""
        return any(stage.embedded for stage in self.stages)

    @property
    def score_keys(self) -> tuple[str, ...]:
        """The scores this mode gives each chunk, in pipeline order: one per stage, then the joined list's."""
        return (*(stage.value for stage in self.stages), *((FUSED,) if self.join else ()))

    def shown_scores(self, rerank: bool) -> list[str]:
        """The scores that mean something on the page for this mode, with or without the rerank stage."""
        return [*self.score_keys, *((RERANK,) if rerank else ())]

    @classmethod
    def parse(cls, text: str | RetrievalMode) -> RetrievalMode:
        """A mode from its value or from a name earlier versions took (still sent by old scripts and links)."""
        if isinstance(text, cls):
            return text
        key = str(text).strip().lower()
        try:
            return cls(_ALIASES.get(key, key))
        except ValueError:
            expected = ", ".join(mode.value for mode in cls)
            raise UserError(f"retrieval mode is {text!r}; expected one of {expected}") from None

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(label, value) per mode, in order, as a radio or dropdown takes them."""
        return [(mode.label, mode.value) for mode in cls]


DEFAULT_MODE = RetrievalMode.FUSED
_ALIASES = {"hybrid": RetrievalMode.FUSED.value, "bm25": RetrievalMode.KEYWORD.value}
