"""The comparison service: one question → base, RAG, fine-tuned and hybrid answers, streamed side by side.

Retrieval runs once (the Haystack query pipeline, up to the prompt) and is timed; then the engine streams
every arm and the service hands its events straight on. Each arm's figures are what it would cost served
alone: the arms that read retrieved chunks (RAG, hybrid) carry the retrieval time in their time to first
token and latency; the others carry none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

from adapters.engine import SIDE_BY_SIDE, TIMING_NOTES, GenerationRequest, RowDone
from adapters.errors import UserError
from adapters.served import TIMING_NOTES as SERVED_TIMING_NOTES
from adapters.served import RowFailed, ServedEngine, served_timing
from pipelines.indexing import sources_of
from pipelines.prompts import plain_messages, to_dicts
from pipelines.rag import run_query
from pipelines.retrieval_modes import DEFAULT_MODE, RetrievalMode
from playground.highlight import used_spans
from playground.metrics import summary
from playground.runtime import ModelInfo, Runtime
from playground.support_data import SupportService

# The arms, in pane order: the control first. (adapter?, reads the retrieved chunks?)
ARMS: dict[str, tuple[bool, bool]] = {
    "base": (False, False),
    "rag": (False, True),
    "finetuned": (True, False),
    "hybrid": (True, True),
}
ROW_NAMES = tuple(ARMS)
MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 20
MAX_NEW_TOKENS = 1024


@dataclass(frozen=True)
class CompareOptions:
    arms: tuple[str, ...] = ROW_NAMES
    max_new_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    top_k: int | None = None  # None: the configured default
    retrieval: RetrievalMode | str = DEFAULT_MODE  # a mode or its value (see pipelines.retrieval_modes)
    files: tuple[str, ...] = ()  # retrieve only from these source files; empty: all
    workspace: str | None = None  # the asking session's private workspace, retrieved from as well
    rerank: bool = False  # a cross-encoder reorders the fused candidates (when one is loaded)
    adapter: str | None = None  # which LoRA adapter answers in the fine-tuned and hybrid panes; None: the default
    # How the arms run side by side (adapters.engine.SIDE_BY_SIDE; a served generator: sequential or at once); None:
    # the engine's.
    timing: str | None = None

    @classmethod
    def requested(
        cls,
        arms: list[str] | None = None,
        adapter: str | None = None,
        top_k: int | None = None,
        retrieval: str | None = None,
        rerank: bool = False,
        files: list[str] | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        timing: str | None = None,
        workspace: str | None = None,
    ) -> CompareOptions:
        """Options as a script sends them (the API): each one left out, None or empty, keeps its default."""
        return cls(
            arms=tuple(arms) if arms else ROW_NAMES,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            top_k=top_k,
            retrieval=retrieval or DEFAULT_MODE,
            files=tuple(files or ()),
            workspace=workspace or None,
            rerank=bool(rerank),
            adapter=adapter or None,
            timing=timing or None,
        )


@dataclass
class Comparison:
    """The comparison so far; `done` once every arm has finished."""

    question: str
    model: ModelInfo
    rows: list[str]
    decoding: dict[str, Any]
    retrieval: dict[str, Any] = field(default_factory=dict)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # arms that could not answer, and why
    adapters: dict[str, str | None] = field(default_factory=dict)  # which adapter answers in each arm
    timing: str = ""
    retrieval_s: float | None = None
    total_s: float | None = None
    done: bool = False

    @property
    def summary(self) -> str:
        return summary(self.answers) if self.done else ""

    @property
    def timing_note(self) -> str:
        note = TIMING_NOTES.get(self.timing) or SERVED_TIMING_NOTES.get(self.timing, "")
        shared = [a for a in self.answers.values() if a.get("timing") == "micro-batched"]
        if shared:
            rows, waited = max(a["batch_rows"] for a in shared), max(a["waited_s"] for a in shared)
            note += f" Its batch held {rows} rows; it waited {waited:.2f} s for the batch to start."
        return note

    def to_json(self) -> dict[str, Any]:
        answers: dict[str, Any] = {name: self.answers.get(name) for name in ROW_NAMES}
        for name, error in self.errors.items():
            answers[name] = {"error": error, "adapter": self.adapters.get(name)}
        return {
            "question": self.question,
            "model": {
                "base": self.model.base,
                "source": self.model.source,
                "adapter": self.model.adapter,
                "note": self.model.note,
            },
            "chunks": self.chunks,
            "answers": answers,
            "summary": self.summary,
            "timing": {"strategy": self.timing, "note": self.timing_note},
            "retrieval_s": self.retrieval_s,
            "total_s": self.total_s,
            "decoding": self.decoding,
            "retrieval": self.retrieval,
        }


def _chunk_json(document: Any) -> dict[str, Any]:
    return {
        "source": document.meta.get("file_path", ""),
        "content": document.content or "",
        "score": document.score,
        "scores": document.meta.get("scores", {}),
        "private": bool(document.meta.get("private")),  # from the asking session's own uploads
    }


def _mark_used(state: Comparison) -> None:
    """Each chunk's spans that the answers which read it (RAG, hybrid) repeat, for highlighting."""
    readers = [state.texts[name] for name in ("rag", "hybrid") if state.answers.get(name)]
    for chunk in state.chunks:
        chunk["used"] = [list(span) for span in used_spans(chunk["content"], readers)]


def check_request(question: str, options: CompareOptions) -> str:
    """What can be checked before any model loads: the question (stripped) and the options' ranges."""
    question = (question or "").strip()
    if not question:
        raise UserError("Type a question first.")
    if len(question) > MAX_QUESTION_CHARS:
        raise UserError(f"The question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}.")
    unknown = [arm for arm in options.arms if arm not in ARMS]
    if unknown or not options.arms:
        raise UserError(f"arms must be one or more of {', '.join(ARMS)}; got {', '.join(options.arms) or 'none'}")
    RetrievalMode.parse(options.retrieval)
    if options.top_k is not None and not 1 <= options.top_k <= MAX_TOP_K:
        raise UserError(f"top-k must be between 1 and {MAX_TOP_K}, got {options.top_k}")
    check_decoding(options.max_new_tokens, options.temperature)
    if options.timing is not None and options.timing not in SIDE_BY_SIDE:
        raise UserError(f"timing is {options.timing!r}; expected one of {', '.join(SIDE_BY_SIDE)}")
    return question


def check_decoding(max_new_tokens: int | None, temperature: float | None, where: str = "") -> None:
    """`where` names the setting the values came from (e.g. an environment variable) when not the request."""
    if max_new_tokens is not None and not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise UserError(f"max new tokens{where} must be between 1 and {MAX_NEW_TOKENS}, got {max_new_tokens}")
    if temperature is not None and not 0 <= temperature <= 2:
        raise UserError(f"temperature{where} must be between 0 and 2, got {temperature}")


@dataclass(frozen=True)
class CompareSetup:
    """What the Compare tab lays itself out from: the defaults it shows and the options it offers."""

    model: ModelInfo  # the banner; its adapter answers in the adapter panes unless another is chosen
    top_k: int
    max_new_tokens: int
    temperature: float
    seed: int
    concurrency: int  # comparisons at once, the page's and the API's together
    rerank_available: bool
    rerank_name: str
    rerank_note: str  # where the cross-encoder came from, or why there is none
    mode: RetrievalMode = DEFAULT_MODE
    modes: tuple[tuple[str, str], ...] = tuple(RetrievalMode.choices())  # (label, value) per retrieval mode


class CompareService:
    def __init__(self, runtime: Runtime, attach: Callable[[str, str | None], None] | None = None) -> None:
        """`attach(name, workspace)` checks that the asking workspace may use a registered adapter and loads it
        into the engine when a question asks for it."""
        self.runtime = runtime
        self.attach = attach

    @cached_property
    def support(self) -> SupportService:
        """The sentence-level support check of finished comparisons (the page runs it after the answers)."""
        return SupportService(self.runtime)

    def setup(self) -> CompareSetup:
        runtime = self.runtime
        settings, reranker = runtime.settings, runtime.reranker
        return CompareSetup(
            model=runtime.model,
            top_k=settings.top_k,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            seed=settings.seed,
            concurrency=settings.concurrency,
            rerank_available=reranker.available,
            rerank_name=reranker.name,
            rerank_note=reranker.note,
        )

    def sources(self, workspace: str | None = None) -> list[str]:
        """The files retrieval can draw from, for the file filter: shared ones and the session's own."""
        private = self.runtime.workspaces.store(workspace) if workspace else None
        return sorted(set(self.runtime.shared_sources) | set(sources_of(private) if private else ()))

    def compare(self, question: str, options: CompareOptions = CompareOptions()) -> Comparison:
        *_, final = self.stream(question, options)
        return final

    def check(self, question: str, options: CompareOptions) -> str:
        """The question, stripped; raises ValueError with a message for the user on any bad input."""
        question = check_request(question, options)
        if options.rerank and not self.runtime.reranker.available:
            raise UserError(f"No reranker model is loaded: {self.runtime.reranker.note}.")
        self._timing(options)  # a served generator refuses the built-in engine's strategies before anything runs
        return question

    def _timing(self, options: CompareOptions) -> str:
        """How the arms will run: the option asked for, else the engine's way; a server has its own (see
        adapters.served)."""
        engine = self.runtime.engine
        if isinstance(engine, ServedEngine):
            return served_timing(options.timing)
        return options.timing or engine.strategy

    def _adapter(self, options: CompareOptions, state: Comparison) -> str | None:
        """The adapter the adapter arms use, attached if needed; a failure becomes those arms' error."""
        adapter = options.adapter or self.runtime.model.adapter
        if not adapter:
            reason = f"No LoRA adapter has been trained on {self.runtime.model.base} yet (Fine-tune tab)."
        elif adapter in self.runtime.engine.adapters and (adapter == self.runtime.model.adapter or not self.attach):
            return adapter
        elif self.attach is None:
            loaded = ", ".join(sorted(self.runtime.engine.adapters)) or "none"
            raise UserError(f"No adapter named {adapter!r} is loaded (loaded: {loaded}).")
        else:
            try:
                self.attach(adapter, options.workspace)  # loaded or not: may this browser use it?
                return adapter
            except UserError:  # no adapter by that name: the question is refused with the reason
                raise
            except Exception as error:  # a broken adapter: its panes say why, the others still answer
                reason = f"The adapter {adapter!r} could not be loaded ({type(error).__name__}: {error})"
        for arm in state.rows:
            if ARMS[arm][0]:
                state.errors[arm] = reason
        return None

    def stream(self, question: str, options: CompareOptions = CompareOptions()) -> Iterator[Comparison]:
        """Yield the comparison after retrieval, after every text delta and after every finished arm."""
        question = self.check(question, options)
        started = time.perf_counter()
        decoding = self.runtime.decoding(
            max_new_tokens=options.max_new_tokens, temperature=options.temperature, seed=options.seed
        )
        check_decoding(decoding.max_new_tokens, decoding.temperature, " (PLAYGROUND_MAX_NEW_TOKENS / _TEMPERATURE)")
        top_k = options.top_k or self.runtime.settings.top_k
        mode = RetrievalMode.parse(options.retrieval)
        retrieval = {
            "top_k": top_k,
            "mode": mode.value,
            "files": list(options.files),
            "rerank": options.rerank,
            "stages": mode.shown_scores(options.rerank),  # only these scores mean anything
        }
        arms = [arm for arm in ROW_NAMES if arm in options.arms]
        state = Comparison(question, self.runtime.model, arms, vars(decoding).copy(), retrieval)
        state.timing = self._timing(options)
        adapter = self._adapter(options, state)
        state.model = replace(self.runtime.model, adapter=adapter or options.adapter or self.runtime.model.adapter)
        state.adapters = {arm: (state.model.adapter if ARMS[arm][0] else None) for arm in arms}
        state.texts = {arm: state.errors.get(arm, "") for arm in arms}
        running = [arm for arm in arms if arm not in state.errors]
        context: list[dict[str, str]] = []
        if any(ARMS[arm][1] for arm in running):
            retrieving = time.perf_counter()
            context = self._retrieve(question, options, retrieval, state)
            state.retrieval_s = time.perf_counter() - retrieving
        else:
            state.retrieval_s = 0.0
        yield state
        requests = [
            GenerationRequest(context if ARMS[arm][1] else plain_messages(question), adapter if ARMS[arm][0] else None)
            for arm in running
        ]
        if requests:
            events = self.runtime.engine.stream(requests, decoding, state.timing)
            with closing(events):  # closing this stream closes the engine's: generation stops within a step
                yield from self._follow(events, running, state)
        state.total_s = time.perf_counter() - started
        _mark_used(state)
        state.done = True
        yield state

    def _follow(self, events: Iterator[Any], running: list[str], state: Comparison) -> Iterator[Comparison]:
        """Apply each engine event to the comparison and yield it."""
        for event in events:
            arm = running[event.row]
            if isinstance(event, RowFailed):  # a served arm the server refused: its pane says why, the others go on
                state.errors[arm] = state.texts[arm] = str(event.error)
            elif isinstance(event, RowDone):
                state.answers[arm] = self._answer(arm, asdict(event.result), state.retrieval_s)
                state.texts[arm] = event.result.text
                state.timing = event.result.timing  # micro-batched when other people's questions joined its batch
            else:
                state.texts[arm] += event.text
            yield state

    def _retrieve(
        self, question: str, options: CompareOptions, retrieval: dict[str, Any], state: Comparison
    ) -> list[dict[str, str]]:
        """Run the query pipeline up to the prompt; the chunks go to the state, the prompt is returned."""
        outputs = run_query(
            self.runtime.pipeline,
            question,
            top_k=retrieval["top_k"],
            mode=retrieval["mode"],
            files=retrieval["files"],
            rerank=retrieval["rerank"],
            workspace=options.workspace,
        )
        state.chunks = [_chunk_json(d) for d in outputs["scores"]["documents"]]
        return to_dicts(outputs["prompt_builder"]["prompt"])

    @staticmethod
    def _answer(arm: str, result: dict[str, Any], retrieval_s: float | None) -> dict[str, Any]:
        """The arm's figures as if it were served alone: retrieval (if it reads chunks) + its own generation."""
        retrieval = (retrieval_s or 0.0) if ARMS[arm][1] else 0.0
        return {
            "text": result["text"],
            "adapter": result["adapter"],
            "retrieval_s": retrieval,
            "prefill_s": result["prefill_s"],
            "ttft_s": retrieval + result["ttft_s"],
            "latency_s": retrieval + result["latency_s"],
            "tokens_per_s": result["tokens_per_s"],
            "prompt_tokens": result["prompt_tokens"],
            "completion_tokens": result["completion_tokens"],
            "finish_reason": result["finish_reason"],
            "timing": result["timing"],
            "token_counts": result["token_counts"],  # tokenizer, server (its usage report) or none
            "waited_s": result["waited_s"],  # micro-batched: its wait for the batch (in ttft and total)
            "batch_rows": result["batch_rows"],  # rows decoded together, other people's included
        }
