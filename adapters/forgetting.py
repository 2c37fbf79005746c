"""The forgetting check: did fine-tuning cost the model what it knew outside the fine-tuning domain?

After a LoRA fine-tune the base model and base + adapter are compared on general material the product ships
(`sample_data/general/`): perplexity on plain encyclopedic text, and how many well-known facts each gets right.
The same check runs inside a training job (a peft model, adapter switched off with `disable_adapter`) and inside
the app's engine (which switches adapters itself): both hand it a `run(adapter_on, task)` that calls
`task(model, tokenizer)` in the asked state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from adapters.datasets import IGNORE_INDEX
from adapters.errors import UserError
from adapters.jsonl import objects

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

T = TypeVar("T")
TEXT_FILE = "text.txt"
QUESTIONS_FILE = "questions.jsonl"


class Runner(Protocol):
    """Calls `task(model, tokenizer)` with the adapter on or off and returns what it returned."""

    def __call__(self, adapter_on: bool, task: Callable[[Any, Any], T]) -> T: ...


@dataclass(frozen=True)
class GeneralSet:
    texts: list[str]  # paragraphs
    questions: list[tuple[str, str]]  # (question, fact)
    name: str = ""


def load_general_set(folder: Path) -> GeneralSet:
    """`text.txt` (paragraphs split on blank lines) and `questions.jsonl` (`{"question", "fact"}` per line) from
    `folder`; a missing file or a bad line is a UserError naming the file (and line)."""
    folder = Path(folder)
    text_path, questions_path = folder / TEXT_FILE, folder / QUESTIONS_FILE
    try:
        text = text_path.read_text(encoding="utf-8")
        asked = questions_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UserError(f"{exc.filename}: not found; a general set needs {TEXT_FILE} and {QUESTIONS_FILE}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{folder}: a file of the general set is not UTF-8 text ({exc.reason})") from None
    # Line breaks inside a paragraph are only wrapping: a blank line is what separates paragraphs.
    paragraphs = [" ".join(block.split()) for block in text.replace("\r\n", "\n").split("\n\n")]
    paragraphs = [p for p in paragraphs if p]
    if not paragraphs:
        raise UserError(f"{text_path.name}: no text to measure perplexity on")
    questions = []
    for number, record in objects(asked, questions_path.name):
        where = f"{questions_path.name}, line {number}"
        for field in ("question", "fact"):
            value = record.get(field)
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{where}, field '{field}': missing or empty; expected a non-empty string")
        questions.append((record["question"].strip(), record["fact"].strip()))
    if not questions:
        raise UserError(f"{questions_path.name}: no questions")
    return GeneralSet(paragraphs, questions, folder.name)


@contextmanager
def _evaluating(model: Any) -> Iterator[None]:
    """Eval mode for the duration (a training job's model is in train mode, and LoRA dropout would make the
    figures random), then the mode it had."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


def _device(model: Any) -> Any:
    return next(model.parameters()).device


def _windows(ids: list[int], window: int) -> list[list[int]]:
    """Cuts ids into windows of at most `window` tokens that overlap by one: the last token of a window is the
    first (context only, never scored) of the next, so every token but the paragraph's first is scored once."""
    if len(ids) < 2:
        return []
    step = window - 1
    return [ids[start : start + window] for start in range(0, len(ids) - 1, step)]


def perplexity(
    model: Any, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], window: int = 256, batch_size: int = 8
) -> tuple[float, int]:
    """exp(mean next-token negative log-likelihood) over every token of `texts`, and the number of tokens scored.

    Each paragraph is tokenized on its own without special tokens (only the text itself is scored) and cut into
    windows of `window` tokens; the windows go through the model in right-padded batches with attention masks,
    padding never scored. The first token of a paragraph has no context and is not scored.
    """
    import torch

    if window < 2:
        raise ValueError(f"window is {window}; a window needs at least 2 tokens to score one")
    windows = [w for text in texts for w in _windows(tokenizer(text, add_special_tokens=False)["input_ids"], window)]
    windows.sort(key=len, reverse=True)  # similar lengths share a batch: little padding
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0  # masked, so any id will do
    device = _device(model)
    total, count = 0.0, 0
    with _evaluating(model), torch.no_grad():
        for start in range(0, len(windows), batch_size):
            batch = windows[start : start + batch_size]
            width = len(batch[0])
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, tokens in enumerate(batch):
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
            labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            targets = labels[:, 1:].to(device)
            # Row by row in float32: exact sums in half precision too, without a float32 copy of the whole batch.
            for row in range(len(batch)):
                total += float(
                    torch.nn.functional.cross_entropy(
                        logits[row, :-1].float(), targets[row], ignore_index=IGNORE_INDEX, reduction="sum"
                    )
                )
            count += int((targets != IGNORE_INDEX).sum())
    if count == 0:
        raise ValueError("no tokens to score: every text is shorter than two tokens")
    return math.exp(total / count), count


def fact_answers(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    questions: Sequence[tuple[str, str]],
    max_new_tokens: int = 32,
    batch_size: int = 8,
) -> list[str]:
    """Greedy answers, one per question: each asked as a single user message through the chat template, in
    left-padded batches (generation continues at the end of every row), decoded without special tokens."""
    import torch

    messages = [[{"role": "user", "content": question}] for question, _ in questions]
    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in messages]
    side, pad = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = "left"
    if pad is None:  # padding needs some token; the attention mask hides which
        tokenizer.pad_token = tokenizer.eos_token
    device = _device(model)
    answers: list[str] = []
    try:
        with _evaluating(model), torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                # The template already holds whatever special tokens the model expects.
                batch = tokenizer(
                    prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(device)
                output = model.generate(
                    **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
                )
                new = output[:, batch["input_ids"].shape[1] :]
                answers += [text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)]
    finally:
        tokenizer.padding_side = side
        if pad is None:
            tokenizer.pad_token = None
    return answers


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


def is_right(answer: str, fact: str) -> bool:
    """The Evaluate tab's fact hit: the fact appears in the answer, ignoring case and line breaks."""
    return _folded(fact) in _folded(answer)


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


@dataclass(frozen=True)
class ForgettingReport:
    base_perplexity: float
    adapter_perplexity: float
    tokens: int
    base_correct: int
    adapter_correct: int
    questions: int
    seconds: float

    @property
    def perplexity_change(self) -> float:
        """Relative: 0.38 when the adapter's perplexity is 38 % above the base model's."""
        return self.adapter_perplexity / self.base_perplexity - 1

    @property
    def sentence(self) -> str:
        """What changed, in words: 'On general text the adapter's perplexity rose 38 % (12.1 → 16.7 over 2,310
        tokens); on 24 general questions it was right 9 times, the base model 11.'"""
        change = self.perplexity_change
        figures = f"{self.base_perplexity:,.1f} → {self.adapter_perplexity:,.1f} over {self.tokens:,} tokens"
        if abs(change) < 0.01:  # below what a reader would call a change
            text = f"On general text the adapter's perplexity stayed the same (within 1 %): {figures}"
        else:
            verb = "rose" if change > 0 else "fell"
            text = f"On general text the adapter's perplexity {verb} {abs(change) * 100:,.0f} % ({figures})"
        if not self.questions:
            return text + "."
        noun = "question" if self.questions == 1 else "questions"
        if self.adapter_correct == self.base_correct:
            answers = f"it was right as often as the base model ({self.base_correct})"
        else:
            answers = f"it was right {_times(self.adapter_correct)}, the base model {self.base_correct}"
        return f"{text}; on {self.questions:,} general {noun} {answers}."

    def to_json(self) -> dict:
        return {**asdict(self), "perplexity_change": self.perplexity_change, "sentence": self.sentence}


def check_forgetting(run: Runner, general: GeneralSet) -> ForgettingReport:
    """Perplexity on `general`'s text and right answers to its questions, base model against base + adapter.

    `run(adapter_on, task)` calls `task(model, tokenizer)` with the adapter enabled or disabled and returns its
    result. A fact is right when it appears in the answer, ignoring case (the Evaluate tab's fact hit).
    """
    started = time.perf_counter()

    def measure(model: Any, tokenizer: Any) -> tuple[tuple[float, int], list[str]]:
        return perplexity(model, tokenizer, general.texts), fact_answers(model, tokenizer, general.questions)

    # One pass per state: a single adapter switch each way.
    (base_perplexity, tokens), base_answers = run(False, measure)
    (adapter_perplexity, _), adapter_answers = run(True, measure)
    facts = [fact for _, fact in general.questions]
    return ForgettingReport(
        base_perplexity=base_perplexity,
        adapter_perplexity=adapter_perplexity,
        tokens=tokens,
        base_correct=sum(map(is_right, base_answers, facts)),
        adapter_correct=sum(map(is_right, adapter_answers, facts)),
        questions=len(facts),
        seconds=time.perf_counter() - started,
    )


def peft_runner(model: Any, tokenizer: Any) -> Runner:
    """The `run` for a peft model and its tokenizer: the adapter is off inside `model.disable_adapter()`."""

    def run(adapter_on: bool, task: Callable[[Any, Any], T]) -> T:
        if adapter_on:
            return task(model, tokenizer)
        with model.disable_adapter():
            return task(model, tokenizer)

    return run
