"""Training data: chat JSONL loading with validation, and tokenisation with the loss on answers only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IGNORE_INDEX = -100  # label value the loss skips (prompt tokens, padding)
ROLES = ("system", "user", "assistant")


class DatasetError(ValueError):
    """A dataset problem; the message names the file, line and field."""


@dataclass(frozen=True)
class ChatExample:
    messages: tuple[dict[str, str], ...]
    line: int = 0

    @property
    def question(self) -> str:
        return next(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]


def _validate_messages(messages: Any, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"{where}: field 'messages' must be a non-empty list")
    checked = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise DatasetError(f"{where}: field '{field}' must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DatasetError(f"{where}: field '{field}.role' is {role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise DatasetError(f"{where}: field '{field}.content' must be a non-empty string")
        checked.append({"role": role, "content": content})
    if checked[-1]["role"] != "assistant":
        raise DatasetError(f"{where}: the last message must have role 'assistant' (the answer to learn)")
    if not any(m["role"] == "user" for m in checked):
        raise DatasetError(f"{where}: field 'messages' needs at least one 'user' message")
    return tuple(checked)


def load_chat_jsonl(path: str | Path) -> list[ChatExample]:
    """Read `{"messages": [...]}` lines; raise DatasetError naming file, line and field."""
    path = Path(path)
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path.name}, line {number}"
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
            if not isinstance(record, dict) or "messages" not in record:
                raise DatasetError(f"{where}: missing field 'messages'")
            examples.append(ChatExample(_validate_messages(record["messages"], where), line=number))
    if not examples:
        raise DatasetError(f"{path.name}: no examples found")
    return examples


def tokenize_for_training(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int
) -> tuple[list[int], list[int]]:
    """Token ids of the whole conversation and labels that train only the final answer.

    The prompt is rendered with the model's own chat template, so training sees exactly what
    inference sends; the answer ends with the end-of-sequence token so the model learns to stop.
    """
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    answer_ids = [*answer_ids, tokenizer.eos_token_id]
    # Keep the answer whole and cut the prompt from the left (the question sits at its end).
    room = max_length - len(answer_ids)
    if room <= 0:
        answer_ids = answer_ids[:max_length]
        prompt_ids = []
    elif len(prompt_ids) > room:
        prompt_ids = prompt_ids[-room:]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    return input_ids, labels
