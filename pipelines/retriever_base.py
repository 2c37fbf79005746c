"""The base our retriever components share, for the fast store and for Qdrant alike."""

from __future__ import annotations

from typing import Any, ClassVar

from haystack import default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy


class StoreRetriever:
    """What every retriever of ours shares, whatever its store: the store (checked against `store_type`), default
    filters, top_k, score scaling, filter policy, serialisation, and per-run query options (top_k 0: none)."""

    store_type: ClassVar[type] = object

    def __init__(
        self,
        document_store: Any,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        scale_score: bool = False,
        filter_policy: FilterPolicy = FilterPolicy.REPLACE,
    ) -> None:
        if not isinstance(document_store, self.store_type):
            raise TypeError(f"document_store must be an instance of {self.store_type.__name__}")
        if top_k <= 0:
            raise ValueError(f"top_k must be greater than 0, but got {top_k}")
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.scale_score = scale_score
        self.filter_policy = filter_policy

    def _init_parameters(self) -> dict[str, Any]:
        return {
            "document_store": self.document_store,
            "filters": self.filters,
            "top_k": self.top_k,
            "scale_score": self.scale_score,
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

    def _query_options(self, filters: dict[str, Any] | None, top_k: int | None, scale_score: bool | None) -> dict:
        top_k = self.top_k if top_k is None else top_k
        if top_k < 0:
            raise ValueError(f"top_k must be greater than or equal to 0, but got {top_k}")
        return {
            "top_k": top_k,
            "filters": apply_filter_policy(self.filter_policy, self.filters, filters),
            "scale_score": self.scale_score if scale_score is None else scale_score,
        }
