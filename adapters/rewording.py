"""Reworded copies of fine-tuning questions: the same thing asked with other words around it.

A small model learns a fact from fine-tuning only in the wordings it was shown: the demo adapter trained on the
sample set alone answered its training questions word for word and none of the 22 differently worded evaluation
questions about the same facts. Studies of knowledge injection find the same in large models (Ovadia et al.,
"Fine-Tuning or Retrieval?", 2024: facts are learnt when seen in many paraphrases). These rewordings are
mechanical and never touch what is asked (the names, numbers and the thing asked about stay word for word): an
opening or closing clause, a clause about the asker before the question, another frame for price, weight and
warranty questions, the product's kind left out after its model name, an article dropped.
"""

from __future__ import annotations

import random
import re

PRICE_FRAMES = (
    "How much does {s} cost?", "What is the price of {s}?", "What does {s} sell for?", "How much is {s}?",
    "What will {s} set me back?", "How much would I pay for {s}?", "What does {s} retail for?",
    "What is the regular price of {s}?",
)  # fmt: skip
WEIGHT_FRAMES = ("How much does {s} weigh?", "What is the weight of {s}?", "How heavy is {s}?", "What does {s} weigh?")
WARRANTY_FRAMES = (
    "How long is the warranty on {s}?", "What warranty does {s} come with?",
    "How many years of coverage does {s} come with?",
)  # fmt: skip

# What each family's questions look like, so the thing asked about ({s}) can be lifted out and framed anew.
_FAMILIES = (
    (
        PRICE_FRAMES,
        (
            r"How much (?:does|do) (?P<s>.+) cost",
            r"How much (?:is|are) (?P<s>.+)",
            r"What (?:is|'s) the (?:regular )?price of (?P<s>.+)",
            r"What (?:does|do) (?P<s>.+) (?:cost|sell for|retail for)",
            r"What does Pinecrest charge for (?P<s>.+)",
        ),
    ),
    (
        WEIGHT_FRAMES,
        (
            r"How much (?:does|do) (?P<s>.+) weigh",
            r"What (?:is|'s) the weight of (?P<s>.+)",
            r"How heavy (?:is|are) (?P<s>.+)",
            r"What (?:does|do) (?P<s>.+) weigh",
        ),
    ),
    (
        WARRANTY_FRAMES,
        (
            r"How long is the warranty (?:on|for) (?P<s>.+)",
            r"What (?:is the )?warranty (?:is )?(?:on|for) (?P<s>.+)",
            r"What warranty (?:does|do) (?P<s>.+) (?:come with|have)",
        ),
    ),
)
_OPENINGS = (
    "Quick question: ", "Hi! ", "I was wondering, ", "Can you tell me: ", "Hello, ", "Before my next trip: ",
    "One more thing: ", "Please help: ",
)  # fmt: skip
_QUESTION_WORDS = frozenset(
    ("What", "How", "When", "Where", "Which", "Who", "Why", "Is", "Are", "Do", "Does", "Can", "Should", "Will")
)
_CLOSINGS = (" Thanks!", " Thank you.", " Just curious.", " Thanks in advance.")
# A clause about the asker before the question: people say why they ask, with words (the shop's name, gear, trips)
# that a model must learn to read past to what is asked.
_SITUATIONS = (
    "I am planning a weekend trip with my family; ", "I bought some gear from Pinecrest last month, so ",
    "A friend recommended Pinecrest to me. ", "I am getting ready for a long hike; ", "I shop at Pinecrest a lot. ",
    "We are going camping in the mountains next week, and ", "I am new to backpacking. ",
    "I have a question for the Pinecrest team: ",
)  # fmt: skip
# The kind of product after its model name ("the Summit 2 tent"): people often leave it out ("the Summit 2").
_KIND_AFTER_MODEL = re.compile(
    r"\b([A-Z][a-z]+(?: [A-Z][a-z]+)? \d+) (?:tent|backpack|pack|sleeping bag|bag|headlamp)\b"
)


def reframed(question: str, rng: random.Random) -> str | None:
    """The question in another frame of its family (price, weight, warranty), or None when it is in none."""
    plain = question.strip().rstrip("?").strip()
    for frames, patterns in _FAMILIES:
        for pattern in patterns:
            if found := re.fullmatch(pattern, plain):
                subject = found["s"]
                return rng.choice([f for f in frames if f.format(s=subject) != question]).format(s=subject)
    return None


def _after(clause: str, question: str) -> str:
    """`question` after `clause`, its question word in lower case unless the clause ends a sentence ("Hi! What …",
    "Hello, what …")."""
    first, _, rest = question.partition(" ")
    lower = first in _QUESTION_WORDS and not clause.rstrip().endswith((".", "!"))
    return f"{clause}{first.lower() if lower else first} {rest}"


def reworded(question: str, rng: random.Random) -> str:
    """One rewording of `question`: reframed when its family is known, else with an article dropped; the product's
    kind perhaps left out; then a clause about the asker, an opening or a closing clause at random. Never the
    question itself."""
    for _ in range(10):
        text = reframed(question, rng) if rng.random() < 0.7 else None
        if text is None:
            text = re.sub(r"\b(?:the|a) ", "", question, count=1) if rng.random() < 0.5 else question
        if rng.random() < 0.5:
            text = _KIND_AFTER_MODEL.sub(r"\1", text, count=1)
        if rng.random() < 0.3:
            text = _after(rng.choice(_SITUATIONS), text)
        elif rng.random() < 0.5:
            text = _after(rng.choice(_OPENINGS), text)
        elif rng.random() < 0.6:
            text += rng.choice(_CLOSINGS)
        if text != question:
            return text
    return rng.choice(_OPENINGS) + question


def rewordings(question: str, count: int, rng: random.Random) -> list[str]:
    """Up to `count` distinct rewordings of `question` (fewer when it allows fewer)."""
    found: list[str] = []
    for _ in range(4 * count):
        if len(found) == count:
            break
        if (text := reworded(question, rng)) not in found:
            found.append(text)
    return found
