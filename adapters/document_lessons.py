"""Reading lessons over the knowledge base's own chunks, with every number swapped.

Synthetic lessons (`reading_lessons`) teach the skill; these show it the documents it will really read: their
layout, their words, chunks cut where the chunker cuts them. Every number in a lesson is replaced by another
number the documents use (the same swap in the context and the answer), so no price, weight or phone number can
be learnt from them: the answer is right only when copied from the context in front of it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from adapters.reading_lessons import FOLLOW_UP, Chunk, RagMessages
from adapters.rewording import PRICE_FRAMES, WARRANTY_FRAMES, WEIGHT_FRAMES

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "at",
        "by",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "our",
        "your",
        "you",
        "we",
        "can",
        "will",
        "may",
        "must",
        "not",
        "no",
        "per",
        "each",
        "every",
        "all",
        "any",
        "into",
        "than",
        "then",
        "also",
        "if",
        "when",
        "what",
        "which",
        "who",
        "how",
        "does",
        "do",
        "has",
        "have",
        "had",
        "more",
        "most",
        "less",
        "up",
        "out",
        "over",
        "under",
        "about",
        "after",
        "before",
        "during",
    ]
)
_QUESTION_TEMPLATES = [
    "What about {k}?",
    "What is the {k}?",
    "Tell me about {k}.",
    "How does {k} work?",
    "Can you explain {k}?",
    "{k}?",
]
_CUED_TEMPLATES = [
    (re.compile(r"\$\d"), ["How much is {k}?", "What does {k} cost?", "What is the price of {k}?"]),
    (
        re.compile(r"\d+\s*(?:business\s+)?(?:day|week|month|year|hour|minute)s?\b"),
        ["How long is {k}?", "How many days for {k}?"],
    ),
    (
        re.compile(r"\d+(?:\.\d+)?\s*(?:kg|g|lb|oz|grams?|pounds?)\b"),
        ["How much does {k} weigh?", "What is the weight of {k}?"],
    ),
    (re.compile(r"\d{3}-\d{4}|@"), ["How do I contact {k}?", "What is the number for {k}?"]),
]


def sentences(text: str) -> list[str]:
    """Self-contained sentences of a chunk, without markdown markers."""
    found = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:#+|[-*]|\d+\.)\s*", "", line).strip()
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", line):
            if len(sentence.split()) >= 5 and sentence[-1:] in ".!?":
                found.append(sentence)
    return found


def synthesize_question(sentence: str, rng: random.Random) -> str:
    """A question made of a few of the sentence's content words.

    Numbers stay out (they are what is asked for) except model numbers in names ("Summit 2").
    """
    words = [w.strip(".,;:!?()\"'") for w in sentence.split()]

    def usable(index: int, word: str) -> bool:
        if not word or word.lower() in _STOPWORDS:
            return False
        if re.search(r"\d", word):
            return word.isdigit() and len(word) <= 3 and index > 0 and words[index - 1][:1].isupper()
        return True

    content = [w for i, w in enumerate(words) if usable(i, w)]
    if not content:
        content = words[:3]
    width = min(len(content), rng.randint(2, 5))
    start = rng.randint(0, min(2, len(content) - width))
    keywords = " ".join(content[start : start + width])  # case kept: "Summit" must match the context
    templates = list(_QUESTION_TEMPLATES)
    for pattern, cued in _CUED_TEMPLATES:
        if pattern.search(sentence):
            templates = cued * 2 + templates
    return rng.choice(templates).format(k=keywords)


_DETERMINERS = ("The", "A", "An", "Every", "Each")
_VERBS = (
    "is", "are", "costs", "cost", "weighs", "weigh", "has", "have", "takes", "uses", "gives", "earns", "earn", "ships",
    "fits", "comes", "opens", "sells", "measures", "holds", "lasts", "runs", "charges", "offers", "includes", "pays",
    "accepts", "starts", "answers", "needs", "ranges",
)  # fmt: skip
_CLAUSE = re.compile(rf"^(?P<subject>[A-Z][^,;:]*?) (?P<verb>{'|'.join(_VERBS)}) (?P<rest>.+)[.!?]$")


def _base_verb(verb: str) -> str:
    return {"has": "have", "is": "be", "are": "be"}.get(verb, verb[:-1] if verb.endswith("s") else verb)


def natural_question(sentence: str, rng: random.Random) -> str | None:
    """A question worded as people ask it ("What will the Summit 2 tent set me back?"), made from the sentence's
    subject and what it says about it; None when the sentence is not a plain statement about a subject.

    Users name the attribute in their own words: price, weight and warranty questions are drawn from several
    wordings, others ask after the subject's own attribute ("What is the Ridgeline 4 tent floor area?") or the verb's
    object ("What does the Beacon 400 headlamp use?").
    """
    found = _CLAUSE.match(sentence)
    if not found or len(found["subject"].split()) > 8 or re.search(r"\b(?:whether|that|which|who|if|when)\b", found[0]):
        return None
    subject, verb, rest = found["subject"], found["verb"], found["rest"]
    words = subject.split()

    def model_number(i: int) -> bool:  # "Summit 2", not "Every 100"
        return words[i].isdigit() and i > 0 and words[i - 1][:1].isupper() and words[i - 1] not in _DETERMINERS

    if any(re.search(r"\d", w) and not model_number(i) for i, w in enumerate(words)):
        return None  # a number in the question could be what the answer states; model numbers ("Summit 2") aside
    first = subject.split()[0]
    if first in _DETERMINERS or first.endswith("ing"):  # "Renting a tent costs …"
        subject = subject[0].lower() + subject[1:]
    being = verb in ("is", "are")
    if ("$" in rest and verb in ("costs", "cost", "sells", "charges")) or (being and rest.startswith("$")):
        return rng.choice(PRICE_FRAMES).format(s=subject)
    if verb in ("weighs", "weigh"):
        return rng.choice(WEIGHT_FRAMES).format(s=subject)
    if "warranty" in rest and verb in ("is", "are", "comes", "has"):
        return rng.choice(WARRANTY_FRAMES).format(s=subject)
    if being and re.match(r"(?:at|located at|located in) ", rest):
        return f"Where {verb} {subject}?"
    if being and rest.startswith("open "):
        return f"When {verb} {subject} open?"
    if being and re.search(r"\b(?:manager|director|chief|founder|executive|head|owner)\b", subject):
        return f"Who {verb} {subject}?"
    if being and re.match(r"[$\d]", rest):
        return rng.choice(["What {v} {s}?", "Tell me {s}."]).format(v=verb, s=subject)
    if verb in ("has", "have") and (attribute := re.match(r"an? ([a-z][a-z -]{2,30}) of ", rest)):
        return rng.choice(["What {a} does {s} have?", "What is the {a} of {s}?"]).format(a=attribute[1], s=subject)
    if being:
        return None
    auxiliary = "do" if not verb.endswith("s") else "does"
    particle = re.match(r"(with|in|to|for|on|at) ", rest)
    return f"What {auxiliary} {subject} {_base_verb(verb)}{' ' + particle[1] if particle else ''}?"


def number_pool(texts: Sequence[str]) -> dict[int, list[str]]:
    """The numbers the documents use, by digit count."""
    pool: dict[int, set[str]] = {}
    for text in texts:
        for run in re.findall(r"\d+", text):
            pool.setdefault(len(run), set()).add(run)
    return {length: sorted(found) for length, found in pool.items()}


def perturb_digits(texts: Sequence[str], rng: random.Random, pool: dict[int, list[str]] | None = None) -> list[str]:
    """Replace every number by another, consistently across `texts`.

    The replacement is drawn from `pool` (numbers of the same length that the documents use,
    so they tokenise like real ones and stay as easy to copy), else made of random digits.
    """
    mapping: dict[str, str] = {}

    def swap(match: re.Match[str]) -> str:
        run = match.group(0)
        if run not in mapping:
            choices = [n for n in (pool or {}).get(len(run), []) if n != run]
            if choices:
                mapping[run] = rng.choice(choices)
            else:
                first = str(rng.randint(1, 9)) if len(run) > 1 else str(rng.randint(0, 9))
                mapping[run] = first + "".join(str(rng.randint(0, 9)) for _ in run[1:])
        return mapping[run]

    return [re.sub(r"\d+", swap, text) for text in texts]


def document_lessons(
    chunks: Sequence[Chunk],
    count: int,
    rng: random.Random,
    rag_messages: RagMessages,
    questions: int = 1,
    max_chunks: int = 3,
) -> list[list[dict[str, str]]]:
    """Conversations over 1–`max_chunks` chunks: the RAG prompt asking about one sentence of the first chosen
    chunk, answered with that sentence, then `questions` − 1 follow-ups about other sentences of the context."""
    chunk_sentences = [sentences(text) for _, text in chunks]
    usable = [i for i, found in enumerate(chunk_sentences) if found]
    if not usable:
        raise ValueError("the documents have no sentences to learn reading from")
    pool = number_pool([text for _, text in chunks])
    conversations = []
    for _ in range(count):
        target = rng.choice(usable)
        others = [i for i in range(len(chunks)) if i != target]
        picked = [target, *rng.sample(others, min(len(others), rng.randint(0, max_chunks - 1)))]
        asked = [(target, rng.randrange(len(chunk_sentences[target])))]
        candidates = [(i, j) for i in picked for j in range(len(chunk_sentences[i])) if (i, j) != asked[0]]
        asked += rng.sample(candidates, min(len(candidates), questions - 1))
        rng.shuffle(picked)
        swapped = perturb_digits([chunks[i][1] for i in picked] + [chunk_sentences[i][j] for i, j in asked], rng, pool)
        context = [(chunks[i][0], text) for i, text in zip(picked, swapped, strict=False)]
        answers = swapped[len(picked) :]
        # Asked about the swapped sentence, so names like "Summit 2" match the context.
        messages = rag_messages(synthesize_question(answers[0], rng), context)
        messages.append({"role": "assistant", "content": answers[0]})
        for answer in answers[1:]:
            question = FOLLOW_UP.format(question=synthesize_question(answer, rng))
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        conversations.append(messages)
    return conversations
