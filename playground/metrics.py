"""Plain-language differences between the answers' timings and token counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LABELS = {"base": "the base model", "rag": "RAG", "finetuned": "the fine-tuned model", "hybrid": "the hybrid"}
NAMES = {"base": "Base (control)", "rag": "RAG", "finetuned": "Fine-tuned", "hybrid": "Hybrid"}


def _tokens(answer: Mapping[str, Any]) -> int:
    return int(answer["prompt_tokens"]) + int(answer["completion_tokens"])


def difference(name: str, other: str, answers: Mapping[str, Mapping[str, Any]]) -> str:
    """'the fine-tuned model answered 1.4 s faster and used 23 % fewer tokens than RAG'."""
    mine, theirs = answers[name], answers[other]
    subject, target = LABELS.get(name, name), LABELS.get(other, other)
    delta = float(theirs["latency_s"]) - float(mine["latency_s"])
    speed = f"answered {abs(delta):.1f} s {'faster' if delta > 0 else 'slower'}" if abs(delta) >= 0.05 else ""
    # A server that sent no usage, with no local tokenizer to count, leaves no token counts to compare.
    counted = all(answer.get("token_counts") != "none" for answer in (mine, theirs))
    same = " and used as many tokens" if counted else ""
    mine_tokens, their_tokens = _tokens(mine), _tokens(theirs)
    tokens = ""
    if counted and their_tokens and mine_tokens != their_tokens:
        change = round(100 * abs(their_tokens - mine_tokens) / their_tokens)
        tokens = f"used {change} % {'fewer' if mine_tokens < their_tokens else 'more'} tokens"
    if speed and tokens:
        return f"{subject} {speed} and {tokens} than {target}"
    if speed:
        return f"{subject} {speed} than {target}{same}"
    if tokens:
        return f"{subject} answered as fast as {target} and {tokens}"
    return f"{subject} answered as fast as {target}{same}"


def summary(answers: Mapping[str, Mapping[str, Any]]) -> str:
    """One or two sentences comparing the fine-tuned (and hybrid) answers with RAG's."""
    if "rag" not in answers:
        return ""
    parts = [difference(name, "rag", answers) for name in ("finetuned", "hybrid") if name in answers]
    if not parts:
        return ""
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def arm_label(name: str, adapter: str | None) -> str:
    """'Fine-tuned (adapter train)': which arm, and which adapter answered in it."""
    label = NAMES.get(name, name)
    return f"{label} (adapter {adapter})" if adapter else label


def table_rows(answers: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    """Rows for the metrics table, one per answer, in pane order."""
    order = list(NAMES)
    return [
        [
            arm_label(name, a.get("adapter")),
            round(float(a.get("retrieval_s", 0.0)), 3),
            round(float(a.get("prefill_s", 0.0)), 3),
            round(float(a["ttft_s"]), 3),
            round(float(a["latency_s"]), 3),
            round(float(a["tokens_per_s"]), 1),
            int(a["prompt_tokens"]),
            int(a["completion_tokens"]),
        ]
        for name, a in sorted(answers.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99)
    ]


TABLE_HEADERS = [
    "answer",
    "retrieval (s)",
    "prefill (s)",
    "time to first token (s)",
    "total (s)",
    "decode tokens/s",
    "prompt tokens",
    "completion tokens",
]
