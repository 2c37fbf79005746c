"""Question–answer pairs from indexed documents, to fine-tune on what the documents say ("RAG to fine-tuning").

With a real instruct model the loaded model writes the questions (one engine call for all passages) and each
answer is the passage sentence it came from. The offline demo model cannot write usable questions, so transparent
templates make them from the sentences' own words; every pair says which way it was made, and the page shows them
all for review and editing before anything trains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adapters.datasets import ChatExample
from adapters.engine import DecodingSettings, Engine, GenerationRequest
from adapters.served import ServedEngine

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
_WORD = re.compile(r"[A-Za-z0-9']+")
# (pattern on the sentence after its subject, question template): the first that matches asks.
_TEMPLATES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"^(costs?|is priced at|sells for)\b", re.I), "How much does {s} cost?", "price"),
    (
        re.compile(r"^(weighs|has a (packed|trail|minimum trail)? ?weight)\b", re.I),
        "How much does {s} weigh?",
        "weight",
    ),
    (re.compile(r"^(is|are) covered by\b.*warranty", re.I), "What warranty covers {s}?", "warranty"),
    (re.compile(r"^sleeps\b", re.I), "How many people does {s} sleep?", "capacity"),
    (re.compile(r"^(is|are) made (of|from)\b", re.I), "What is {s} made of?", "material"),
    (re.compile(r"^(is|are) rated (for|to)\b", re.I), "What is {s} rated for?", "rating"),
    (re.compile(r"^comes? in\b", re.I), "What does {s} come in?", "options"),
    (re.compile(r"^(has|have|includes?|ships? with|uses?)\b", re.I), "What does {s} have?", "features"),
    (re.compile(r"^(is|are) (available|sold|open|closed)\b", re.I), "When or where is {s} available?", "availability"),
)
_VERB = re.compile(r"\s(costs?|is|are|has|have|weighs|sleeps|comes?|includes?|ships?|uses?|sells)\b(?=\s)", re.I)
MAX_SUBJECT_WORDS = 8
_DETERMINERS = {"The", "A", "An", "Every", "Each", "All", "Any", "This", "That", "These", "Those", "Our", "Your"}
QUESTION_PROMPT = (
    "Write one question that a customer could ask and that this passage answers. Reply with the question only.\n\n"
    "Passage:\n{passage}"
)


@dataclass
class QAPair:
    question: str
    answer: str
    source: str  # the file the passage came from
    method: str  # "model", or "template: <kind>"

    def to_example(self) -> ChatExample:
        messages = ({"role": "user", "content": self.question}, {"role": "assistant", "content": self.answer})
        return ChatExample(messages)


@dataclass(frozen=True)
class Passage:
    source: str
    title: str
    heading: str
    sentences: tuple[str, ...]


def passages(chunks: Iterable[tuple[str, str]]) -> list[Passage]:
    """Sections of each file (markdown headings, else paragraphs) as sentences; chunks come in file order."""
    found: list[Passage] = []
    titles: dict[str, str] = {}
    for source, text in chunks:
        heading = ""
        block: list[str] = []
        for raw in [*text.splitlines(), ""]:  # the empty line at the end closes the last block
            line = raw.strip()
            if line and not line.startswith("#"):
                block.append(line.lstrip("-*• ").strip())
                continue
            sentences = tuple(s for kept in block for s in _sentences(kept))
            if sentences:
                found.append(Passage(source, titles.get(source, _title_from(source)), heading, sentences))
            block = []
            if line.startswith("#"):
                heading = line.lstrip("#").strip()
                if raw.startswith("# ") and source not in titles:
                    titles[source] = heading
    return found


def _title_from(source: str) -> str:
    return Path(source).stem.replace("-", " ").replace("_", " ").strip().title()


def _sentences(line: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(line) if len(_WORD.findall(s)) >= 4 and s.strip()[-1:] in ".!?"]


def template_pair(sentence: str, source: str) -> QAPair | None:
    """A question from the sentence's subject and verb, or None when no template fits."""
    verb = _VERB.search(sentence)
    if verb is None:
        return None
    subject = sentence[: verb.start()].strip()
    if not subject or len(subject.split()) > MAX_SUBJECT_WORDS:
        return None
    rest = sentence[verb.start() :].strip()
    for pattern, template, kind in _TEMPLATES:
        if pattern.search(rest):
            if subject.split()[0] in _DETERMINERS:  # "the tent", but "Pinecrest" keeps its capital
                subject = subject[0].lower() + subject[1:]
            question = template.format(s=subject)
            return QAPair(question[0].upper() + question[1:], sentence, source, f"template: {kind}")
    return None


def template_pairs(found: Sequence[Passage], limit: int) -> list[QAPair]:
    pairs, seen = [], set()
    for passage in found:
        for sentence in passage.sentences:
            pair = template_pair(sentence, passage.source)
            if pair is not None and pair.question.lower() not in seen:
                seen.add(pair.question.lower())
                pairs.append(pair)
                if len(pairs) >= limit:
                    return pairs
    return pairs


def usable_question(text: str, passage: Passage) -> str | None:
    """The model's question if it looks like one about this passage: one line ending in '?', 4–30 words,
    sharing a content word with the passage."""
    line = text.strip().splitlines()[0].strip().strip('"') if text.strip() else ""
    words = _WORD.findall(line.lower())
    if not line.endswith("?") or not 4 <= len(words) <= 30:
        return None
    passage_words = {w for s in passage.sentences for w in _WORD.findall(s.lower()) if len(w) > 3}
    return line if passage_words & set(words) else None


def model_pairs(
    engine: Engine | ServedEngine, found: Sequence[Passage], limit: int, batch: int = 8
) -> tuple[list[QAPair], int]:
    """Questions written by the model, one per passage; returns the pairs and how many outputs were unusable."""
    pairs: list[QAPair] = []
    unusable = 0
    chosen = list(found[:limit])
    settings = DecodingSettings(max_new_tokens=48, min_new_tokens=4, temperature=0.0)
    for start in range(0, len(chosen), batch):
        group = chosen[start : start + batch]
        requests = [
            GenerationRequest([{"role": "user", "content": QUESTION_PROMPT.format(passage=" ".join(p.sentences))}])
            for p in group
        ]
        for passage, result in zip(group, engine.generate(requests, settings), strict=True):
            question = usable_question(result.text, passage)
            if question is None:
                unusable += 1
                continue
            pairs.append(QAPair(question, " ".join(passage.sentences[:3]), passage.source, "model"))
    return pairs, unusable


@dataclass
class BuildReport:
    pairs: list[QAPair]
    note: str

    def rows(self) -> list[list[str]]:
        return [[p.question, p.answer, p.source, p.method] for p in self.pairs]

    def to_json(self) -> dict[str, Any]:
        return {"note": self.note, "pairs": [asdict(p) for p in self.pairs]}


def build_pairs(
    chunks: Iterable[tuple[str, str]], engine: Engine | ServedEngine | None, limit: int = 200
) -> BuildReport:
    """Pairs from the chunks: model-written questions when `engine` is given, templates for the rest."""
    found = passages(chunks)
    if not found:
        return BuildReport([], "There is no text to build questions from.")
    if engine is None:
        pairs = template_pairs(found, limit)
        note = (
            f"{len(pairs)} pairs from templates (the Method column says which): the demo model cannot write "
            "usable questions. Review and edit them before training."
        )
        return BuildReport(pairs, note)
    pairs, unusable = model_pairs(engine, found, limit)
    if len(pairs) < limit:  # templates fill what the model could not
        asked = {p.question.lower() for p in pairs}
        pairs += [p for p in template_pairs(found, limit) if p.question.lower() not in asked][: limit - len(pairs)]
    model_made = sum(p.method == "model" for p in pairs)
    note = (
        f"{model_made} questions written by the model, {len(pairs) - model_made} from templates"
        + (f" ({unusable} model outputs were not usable questions)" if unusable else "")
        + ". Review and edit them before training."
    )
    return BuildReport(pairs, note)


def pairs_from_rows(rows: Sequence[Sequence[Any]]) -> list[QAPair]:
    """The reviewed table back into pairs; rows with an empty question or answer are dropped."""
    pairs = []
    for row in rows:
        question, answer = (str(row[0] or "").strip(), str(row[1] or "").strip()) if len(row) >= 2 else ("", "")
        if question and answer:
            source = str(row[2]) if len(row) > 2 else ""
            method = str(row[3]) if len(row) > 3 else "edited"
            pairs.append(QAPair(question, answer, source, method))
    return pairs
