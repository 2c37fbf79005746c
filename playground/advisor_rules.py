"""The advisor's decision framework: the questions about a use case, and the rules that turn the answers into RAG,
fine-tuning or the hybrid, each with its reason in words.

Each rule reads one answer and favours the approaches that meet that need, with a weight; the approach with the most
weight wins among those no rule rules out, a tie going to the simpler one (RAG, then fine-tuning, then the hybrid,
which has both to keep up). A new rule is one entry in `RULES`; a new question is one entry in `QUESTIONS` and one
field of `Answers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adapters.errors import UserError
from playground.metrics import NAMES


class Approach(StrEnum):
    """In order of simplicity; the values are the evaluation's arm names, so measurements map onto them."""

    RAG = "rag"
    FINETUNED = "finetuned"
    HYBRID = "hybrid"

    @property
    def label(self) -> str:
        return NAMES[self.value]

    @property
    def title(self) -> str:
        return {
            "rag": "RAG (retrieval)",
            "finetuned": "Fine-tuning (a LoRA adapter)",
            "hybrid": "Hybrid (a fine-tuned adapter reading retrieved chunks)",
        }[self.value]


RETRIEVES = (Approach.RAG, Approach.HYBRID)
TRAINS = (Approach.FINETUNED, Approach.HYBRID)


@dataclass(frozen=True)
class Question:
    name: str  # the field of `Answers`; the command line's flag is --name
    text: str
    choices: tuple[tuple[str, str], ...] = ()  # (value, label); none: a yes/no question

    def label(self, value: str | bool) -> str:
        if not self.choices:
            return "yes" if value else "no"
        return dict(self.choices).get(str(value), str(value))


QUESTIONS: tuple[Question, ...] = (
    Question(
        "changes",
        "How often does the knowledge change?",
        (("rarely", "rarely (a few times a year)"), ("sometimes", "about monthly"), ("often", "weekly or more often")),
    ),
    Question(
        "latency",
        "What response time is required?",
        (("relaxed", "several seconds are fine"), ("interactive", "about a second"), ("strict", "as fast as possible")),
    ),
    Question(
        "volume",
        "How much data is there?",
        (("small", "a few documents"), ("medium", "hundreds of documents"), ("large", "thousands or more")),
    ),
    Question(
        "style",
        "How much do style and format matter (a voice, a template, a structure)?",
        (("little", "little"), ("somewhat", "somewhat"), ("much", "a lot")),
    ),
    Question("citations", "Must answers cite their sources?"),
    Question(
        "budget",
        "Is there a budget for training?",
        (("none", "none"), ("some", "some (GPU hours, or CPU minutes for a small model)")),
    ),
    Question("offline", "Must it run offline (on a device, without a network)?"),
)


@dataclass(frozen=True)
class Answers:
    """The answers to `QUESTIONS`; the defaults are what the page and the command line start from."""

    changes: str = "sometimes"
    latency: str = "interactive"
    volume: str = "medium"
    style: str = "little"
    citations: bool = False
    budget: str = "some"
    offline: bool = False

    def __post_init__(self) -> None:
        for question in QUESTIONS:
            value = getattr(self, question.name)
            allowed = [choice for choice, _ in question.choices]
            if allowed and value not in allowed:
                raise UserError(f"{question.text} {value!r} is not an answer: choose one of {', '.join(allowed)}.")


def question(name: str) -> Question:
    return next(q for q in QUESTIONS if q.name == name)


@dataclass(frozen=True)
class Rule:
    question: str  # the answer it reads
    answer: str | bool  # the answer that fires it
    favours: tuple[Approach, ...]
    weight: int
    reason: str
    rules_out: tuple[Approach, ...] = ()  # approaches this answer makes impossible

    def fires(self, answers: Answers) -> bool:
        return getattr(answers, self.question) == self.answer

    def to_json(self) -> dict[str, object]:
        return {
            "question": self.question,
            "answer": question(self.question).label(self.answer),
            "favours": [a.value for a in self.favours],
            "weight": self.weight,
            "reason": self.reason,
            "rules_out": [a.value for a in self.rules_out],
        }


RULES: tuple[Rule, ...] = (
    Rule(
        "changes",
        "often",
        RETRIEVES,
        2,
        "The knowledge changes weekly or more often: retrieval reads a changed document as soon as it is re-indexed "
        "(seconds), while an adapter keeps what it was trained on until it is trained again.",
    ),
    Rule(
        "changes",
        "sometimes",
        RETRIEVES,
        1,
        "The knowledge changes about monthly: re-indexing keeps up at no cost, an adapter needs a training job each "
        "time.",
    ),
    Rule(
        "changes",
        "rarely",
        (Approach.FINETUNED,),
        1,
        "The knowledge is stable: what an adapter learns once stays right.",
    ),
    Rule(
        "citations",
        True,
        RETRIEVES,
        2,
        "Answers must cite their sources: retrieval knows which files each answer read; knowledge trained into an "
        "adapter has no source to point to.",
    ),
    Rule(
        "volume",
        "large",
        RETRIEVES,
        2,
        "There is a lot of data: retrieval reads only the chunks a question needs and scales to hundreds of thousands "
        "of chunks, while an adapter cannot hold that many facts reliably.",
    ),
    Rule(
        "budget",
        "none",
        (Approach.RAG,),
        2,
        "There is no budget for training: RAG needs none (an index builds in minutes), while fine-tuning and the "
        "hybrid both train an adapter; ask for the style with instructions and examples in the prompt instead.",
        rules_out=TRAINS,
    ),
    Rule(
        "style",
        "much",
        TRAINS,
        2,
        "Style and format matter a lot: training teaches a voice, template or structure that holds on every answer; "
        "instructions in a prompt hold it less reliably.",
    ),
    Rule(
        "style",
        "somewhat",
        TRAINS,
        1,
        "Style and format matter somewhat: an adapter keeps them more consistently than prompt instructions.",
    ),
    Rule(
        "latency",
        "strict",
        (Approach.FINETUNED,),
        2,
        "Answers must come as fast as possible: the fine-tuned model has no retrieval step and a short prompt (no "
        "retrieved chunks to read first), so it answers soonest.",
    ),
    Rule(
        "offline",
        True,
        (Approach.FINETUNED,),
        1,
        "It must run offline: a fine-tuned model carries its knowledge in its weights, while RAG must also ship the "
        "index and the embedding model to the device and keep them up to date there.",
    ),
)


@dataclass(frozen=True)
class Decision:
    approach: Approach
    scores: dict[Approach, int]
    ruled_out: tuple[Approach, ...]
    reasons: tuple[Rule, ...]  # the rules that fired for the chosen approach
    against: tuple[Rule, ...]  # the rules that fired for another one only


def decide(answers: Answers, rules: tuple[Rule, ...] = RULES) -> Decision:
    fired = [rule for rule in rules if rule.fires(answers)]
    scores = {a: sum(rule.weight for rule in fired if a in rule.favours) for a in Approach}
    ruled_out = tuple(a for a in Approach if any(a in rule.rules_out for rule in fired))
    # max keeps the first of equal scores: a tie goes to the simpler approach (the Enum's order).
    chosen = max((a for a in Approach if a not in ruled_out), key=scores.__getitem__)
    return Decision(
        chosen,
        scores,
        ruled_out,
        tuple(rule for rule in fired if chosen in rule.favours),
        tuple(rule for rule in fired if chosen not in rule.favours),
    )
