"""The base of our retriever components, for the fast store and for Qdrant alike: one stage (keyword or dense) over
one store, with Haystack's retriever options and one typed run(), so every kind of store takes the same inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy

from pipelines.retrieval_modes import Stage


@dataclass(frozen=True)
class Search:
    """One run's options, the retriever's defaults filled in."""

    top_k: int
    filters: dict[str, Any] | None
    scale_score: bool
    return_embedding: bool


def _check_top_k(top_k: int) -> None:
    # As Haystack's retrievers: a stage that should not run is left out of the pipeline, not asked for nothing.
    if top_k < 1:
        raise ValueError(f"top_k must be greater than 0, but got {top_k}")


class StoreRetriever:
    """What every retriever of ours shares, whatever its store: the stage, the store (checked against
    `store_types`), default filters, top_k, score scaling, filter policy, serialisation and run()."""

    store_types: ClassVar[tuple[type, ...]] = (object,)

    def __init__(
        self,
        document_store: Any,
        stage: Stage | str,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        return_embedding: bool = False,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, self.store_types):
            raise TypeError(f"document_store must be one of: {', '.join(t.__name__ for t in self.store_types)}")
        _check_top_k(top_k)
        self.document_store = document_store
        self.stage = Stage(stage)
        self.filters = filters
        self.top_k = top_k
        self.scale_score = scale_score
        self.return_embedding = return_embedding  # dense stages only
        self.filter_policy = filter_policy
        self._prepare()

    def _prepare(self) -> None:
        """What a kind of store needs once its retriever is configured (a check, a client); nothing by default."""

    def _init_parameters(self) -> dict[str, Any]:
        return {
            "document_store": self.document_store,
            "stage": self.stage.value,
            "filters": self.filters,
            "top_k": self.top_k,
            "scale_score": self.scale_score,
            "return_embedding": self.return_embedding,
            "filter_policy": self.filter_policy.value,
        }

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._init_parameters())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        init_params = dict(data.get("init_parameters", {}))  # a copy: the caller's dict stays serialised
        if "filter_policy" in init_params:
            init_params["filter_policy"] = FilterPolicy.from_str(init_params["filter_policy"])
        return default_from_dict(cls, {**data, "init_parameters": init_params})

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str | None = None,
        query_embedding: list[float] | None = None,
        workspace: str | None = None,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
        scale_score: bool | None = None,
        return_embedding: bool | None = None,
    ) -> dict[str, list[Document]]:
        """`query` for a keyword stage, `query_embedding` for a dense one; `workspace` picks the store of a
        retriever over the browser sessions' own stores (one over a single store ignores it)."""
        top_k = self.top_k if top_k is None else top_k
        _check_top_k(top_k)
        search = Search(
            top_k=top_k,
            filters=apply_filter_policy(self.filter_policy, self.filters, filters),
            scale_score=self.scale_score if scale_score is None else scale_score,
            return_embedding=self.return_embedding if return_embedding is None else return_embedding,
        )
        if self.stage is Stage.DENSE:
            if query_embedding is None:
                raise ValueError("dense retrieval needs query_embedding")
            return {"documents": self._dense(query_embedding, workspace, search)}
        if self.stage is Stage.KEYWORD:
            if not query:
                raise ValueError("Query should be a non-empty string")
            return {"documents": self._keyword(query, workspace, search)}
        raise NotImplementedError(f"{type(self).__name__} has no search for the {self.stage.value} stage")

    def _keyword(self, query: str, workspace: str | None, search: Search) -> list[Document]:
        raise NotImplementedError

    def _dense(self, query_embedding: list[float], workspace: str | None, search: Search) -> list[Document]:
        raise NotImplementedError
