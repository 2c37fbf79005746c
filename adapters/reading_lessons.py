"""Synthetic reading lessons for the offline demo model: invented documents, questions whose answer only those
documents hold, and answers that say the fact's sentence back.

Every product, store, person, number and unit is invented per lesson, and the retrieved context also holds
distractor documents about other entities of the same kind with the same attributes (other prices, other
weights), in random order. So the only way to answer right is to find the entity and the attribute the question
names in the context and copy that sentence: the model learns to read, and no fact of the sample knowledge base
can be learnt from these lessons (a test checks that no invented name is one of the sample documents').
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

Chunk = tuple[str, str]  # (source file name, text), as the RAG prompt shows a retrieved chunk
RagMessages = Callable[[str, Sequence[Chunk]], list[dict[str, str]]]

_FIRST = [
    "Amber",
    "Arrow",
    "Birch",
    "Bluff",
    "Boulder",
    "Bramble",
    "Brook",
    "Cedar",
    "Cinder",
    "Cirrus",
    "Cobalt",
    "Comet",
    "Copper",
    "Coral",
    "Crest",
    "Cypress",
    "Dawn",
    "Delta",
    "Drift",
    "Dune",
    "Echo",
    "Falcon",
    "Fjord",
    "Flint",
    "Frost",
    "Garnet",
    "Gale",
    "Glade",
    "Harbor",
    "Hawk",
    "Heron",
    "Hollow",
    "Horizon",
    "Indigo",
    "Iris",
    "Jasper",
    "Kestrel",
    "Lagoon",
    "Larch",
    "Lumen",
    "Lynx",
    "Maple",
    "Marsh",
    "Meadow",
    "Mesa",
    "Mist",
    "Nimbus",
    "Nova",
    "Oak",
    "Onyx",
    "Orbit",
    "Osprey",
    "Pebble",
    "Prairie",
    "Quartz",
    "Quill",
    "Raven",
    "Reed",
    "Ridge",
    "River",
    "Rowan",
    "Sable",
    "Sierra",
    "Sparrow",
    "Spruce",
    "Stone",
    "Storm",
    "Sumac",
    "Tahoe",
    "Talon",
    "Terra",
    "Thistle",
    "Timber",
    "Tundra",
    "Vale",
    "Vista",
    "Willow",
    "Wren",
    "Yarrow",
    "Zephyr",
]
_SECOND = [
    "Peak",
    "Pass",
    "Line",
    "Run",
    "Crest",
    "Ridge",
    "Path",
    "Field",
    "Rock",
    "Wind",
    "Light",
    "Fall",
    "Loop",
    "Camp",
    "Hill",
    "Fork",
]
_KINDS = (
    "tent", "jacket", "stove", "backpack", "sleeping bag", "headlamp", "water filter", "kayak", "lantern", "boots",
    "trekking poles", "hammock", "cooler", "camp chair", "daypack", "rain shell", "bike rack", "snowshoes",
)  # fmt: skip
_COLORS = [
    "Lichen Green",
    "Storm Blue",
    "Desert Clay",
    "Frost White",
    "Poppy Red",
    "Dusk Purple",
    "Sand",
    "Basil",
    "Ochre",
]
_STREETS = [
    "Main",
    "Harbor",
    "Mill",
    "Orchard",
    "Ridge",
    "River",
    "Valley",
    "Willow",
    "Elm",
    "Poplar",
    "Meadowlark",
    "Foundry",
]
_PEOPLE_FIRST = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Nils",
    "Omar",
    "Priya",
    "Rosa",
    "Sam",
    "Tara",
]
_PEOPLE_LAST = [
    "Alvarez",
    "Brooks",
    "Chen",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Moreau",
    "Novak",
]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


_ONSETS = (
    "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "kr", "tr", "st",
    "sl", "pl", "ch", "sh", "th", "qu", "w",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ea", "y")
_CODAS = ("", "", "", "", "", "n", "r", "l", "s", "m", "x", "nd", "rk")
_COLOR_WORDS = ("Blue", "Green", "Red", "Gray", "Teal", "Gold", "Black")


def coined_word(rng: random.Random) -> str:
    """A made-up word of two or three syllables ("Drovaln", "Kestimor"): names the model has never seen, split into
    whatever pieces the tokenizer has, so that only copying them from the context gets them right. A model trained
    on a fixed list of names learnt the names and rewrote new ones into them ("Harrow Bay" became "Harbor area")."""
    while True:  # six letters at least: short ones can be English words ("Daily")
        syllables = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(rng.randint(2, 3))]
        if len(word := "".join(syllables)) >= 6:
            return word.capitalize()


def _name(rng: random.Random, listed: Sequence[str]) -> str:
    return coined_word(rng) if rng.random() < 0.6 else rng.choice(listed)


def _person(rng: random.Random) -> str:
    return f"{_name(rng, _PEOPLE_FIRST)} {_name(rng, _PEOPLE_LAST)}"


def _color(rng: random.Random) -> str:
    return rng.choice(_COLORS) if rng.random() < 0.4 else f"{coined_word(rng)} {rng.choice(_COLOR_WORDS)}"


def _price(rng: random.Random) -> str:
    dollars = rng.choice([rng.randint(5, 99), rng.randint(100, 999), rng.randint(1000, 2400)])
    return f"${dollars:,}" if rng.random() < 0.8 else f"${dollars:,}.{rng.choice(['99', '95', '50'])}"


def _weight(rng: random.Random) -> str:
    return rng.choice(
        [
            f"{rng.randint(1, 14)} lb {rng.randint(1, 15)} oz",
            f"{rng.randint(2, 98) / 10:g} kg",
            f"{rng.randint(80, 990)} g",
        ]
    )


def _time(rng: random.Random) -> str:
    return f"{rng.randint(6, 11)}:{rng.choice(['00', '15', '30', '45'])} AM"


def _date(rng: random.Random) -> str:
    return f"{rng.choice(_MONTHS)} {rng.randint(1, 28)}, {rng.randint(2024, 2028)}"


def _phone(rng: random.Random) -> str:
    return f"({rng.randint(200, 989)}) {rng.randint(200, 989)}-{rng.randint(1000, 9999)}"


@dataclass(frozen=True)
class Attribute:
    """One kind of fact: how to invent a value, the sentences that state it, and the questions that ask for it."""

    name: str
    value: Callable[[random.Random], str]
    sentences: tuple[str, ...]  # "{e}" is the entity, "{v}" the value
    questions: tuple[str, ...]


PRODUCT_ATTRIBUTES = (
    Attribute(
        "price",
        _price,
        (
            "The {e} costs {v}.",
            "The {e} is priced at {v}.",
            "The {e} sells for {v}.",
            "The regular price of the {e} is {v}.",
        ),
        (
            "How much does the {e} cost?",
            "What is the price of the {e}?",
            "What does the {e} cost?",
            "How much is the {e}?",
            "What is the regular price of the {e}?",
        ),
    ),
    Attribute(
        "weight",
        _weight,
        ("The {e} weighs {v}.", "The {e} has a packed weight of {v}.", "The {e} has a weight of {v}."),
        (
            "How much does the {e} weigh?",
            "What is the weight of the {e}?",
            "How heavy is the {e}?",
            "What does the {e} weigh?",
        ),
    ),
    Attribute(
        "warranty",
        lambda rng: f"{rng.randint(1, 10)}-year",
        ("The {e} is covered by a {v} warranty.", "The {e} comes with a {v} warranty against defects."),
        (
            "What warranty does the {e} have?",
            "How long is the warranty on the {e}?",
            "How many years of warranty does the {e} come with?",
        ),
    ),
    Attribute(
        "color",
        _color,
        ("The {e} comes in one color called {v}.", "The {e} is sold in a color called {v}."),
        ("What color does the {e} come in?", "Which color is the {e} sold in?"),
    ),
    Attribute(
        "capacity",
        lambda rng: rng.choice([f"{rng.randint(1, 8)} people", f"{rng.randint(5, 95)} liters"]),
        ("The {e} holds {v}.", "The {e} has a capacity of {v}."),
        ("What is the capacity of the {e}?", "How much does the {e} hold?"),
    ),
    Attribute(
        "setup",
        lambda rng: f"{rng.randint(2, 45)} minutes",
        ("The {e} takes about {v} to set up.", "Setting up the {e} takes about {v}."),
        ("How long does the {e} take to set up?", "How many minutes does it take to set up the {e}?"),
    ),
    Attribute(
        "rating",
        lambda rng: f"{rng.randint(1, 30) * 1000:,} mm",
        ("The {e} has a waterproof rating of {v}.", "The {e} is rated waterproof to {v}."),
        ("What waterproof rating does the {e} have?", "How waterproof is the {e}?"),
    ),
    Attribute(
        "size",
        lambda rng: rng.choice([f"{rng.randint(12, 90)} inches", f"{rng.randint(20, 95)} square feet"]),
        ("The {e} measures {v}.", "The size of the {e} is {v}."),
        ("How big is the {e}?", "What size is the {e}?", "What does the {e} measure?"),
    ),
    Attribute(
        "runtime",
        lambda rng: f"{rng.randint(3, 160)} hours",
        ("The {e} runs for {v} on one charge.", "The battery of the {e} lasts {v}."),
        ("How long does the {e} run on one charge?", "How long does the battery of the {e} last?"),
    ),
)

STORE_ATTRIBUTES = (
    Attribute(
        "address",
        lambda rng: f"{rng.randint(10, 4999)} {_name(rng, _STREETS)} {rng.choice(['Street', 'Road', 'Avenue'])}",
        ("The {e} is located at {v}.", "The address of the {e} is {v}."),
        ("Where is the {e}?", "What is the address of the {e}?", "On which street is the {e}?"),
    ),
    Attribute(
        "phone",
        _phone,
        ("The phone number of the {e} is {v}.", "You can call the {e} at {v}."),
        ("What is the phone number of the {e}?", "How can I call the {e}?"),
    ),
    Attribute(
        "opening",
        _time,
        ("The {e} opens at {v} every day.", "The {e} opens its doors at {v}."),
        ("What time does the {e} open?", "When does the {e} open?"),
    ),
    Attribute(
        "manager",
        _person,
        ("The {e} is managed by {v}.", "The manager of the {e} is {v}."),
        ("Who manages the {e}?", "Who is the manager of the {e}?"),
    ),
    Attribute(
        "opened",
        _date,
        ("The {e} first opened on {v}.", "The {e} opened on {v}."),
        ("When did the {e} open?", "On what date did the {e} first open?"),
    ),
    Attribute(
        "discount",
        lambda rng: f"{rng.randint(2, 12) * 5}%",
        ("Members get {v} off at the {e}.", "The {e} gives members {v} off."),
        ("What discount do members get at the {e}?", "How much off do members get at the {e}?"),
    ),
    Attribute(
        "returns",
        lambda rng: f"{rng.choice([14, 21, 30, 45, 60, 90, 100, 365])} days",
        ("The {e} accepts returns within {v}.", "Returns at the {e} are accepted within {v} of purchase."),
        ("How many days do I have to return an item to the {e}?", "What is the return window at the {e}?"),
    ),
)


PROGRAM_ATTRIBUTES = (
    Attribute(
        "fee",
        _price,
        ("The {e} costs {v} per day.", "Joining the {e} costs {v}.", "The fee for the {e} is {v}."),
        ("How much does the {e} cost?", "What is the fee for the {e}?", "What does it cost to join the {e}?"),
    ),
    Attribute(
        "countries",
        lambda rng: f"{rng.randint(3, 90)} countries",
        ("The {e} ships to {v}.", "The {e} is available in {v}."),
        ("How many countries does the {e} ship to?", "In how many countries is the {e} available?"),
    ),
    Attribute(
        "points",
        lambda rng: f"{rng.randint(1, 10)} points",
        ("The {e} gives {v} for every dollar spent.", "Members of the {e} earn {v} per dollar."),
        ("How many points does the {e} give per dollar?", "How many points per dollar do members of the {e} earn?"),
    ),
    Attribute(
        "minimum",
        _price,
        ("The {e} needs a minimum order of {v}.", "Orders over {v} qualify for the {e}."),
        ("What is the minimum order for the {e}?", "How much do I need to spend for the {e}?"),
    ),
    Attribute(
        "duration",
        lambda rng: rng.choice(
            [f"{rng.randint(2, 30)} days", f"{rng.randint(1, 12)} weeks", f"{rng.randint(1, 24)} months"]
        ),
        ("The {e} lasts {v}.", "The {e} runs for {v}."),
        ("How long does the {e} last?", "How long does the {e} run?"),
    ),
    Attribute(
        "contact",
        lambda rng: f"{_name(rng, _PEOPLE_FIRST).lower()}@{_name(rng, _SECOND).lower()}.example",
        ("Questions about the {e} go to {v}.", "The {e} can be reached by email at {v}."),
        ("What is the email address of the {e}?", "How do I email the {e}?"),
    ),
)
_PROGRAMS = ("program", "membership", "club", "plan", "service", "gift card", "workshop", "pass")
_FILLERS = (
    "The {e} is popular with weekend campers.",
    "Staff recommend the {e} to first-time customers.",
    "The {e} was reviewed by the gear team last season.",
    "Many customers ask about the {e} in spring.",
    "The {e} is described in more detail in the store guide.",
)
_HEADINGS = ("Details", "Key facts", "At a glance", "Specs", "What to know")
_MODIFIERS = ("new", "popular", "compact", "updated", "deluxe", "budget", "family-size", "Long length", "two-person")

# Attributes named by words drawn per lesson: with hundreds of them, no question-to-sentence mapping can be learnt
# by heart, so the model learns to match the question's words to the sentence that uses them.
_ATTRIBUTE_NOUNS = (
    "battery life", "burn time", "heat output", "light output", "floor area", "pack volume", "boil time",
    "fill power", "temperature rating", "frame weight", "strap width", "shelf life", "lead time", "turnaround time",
    "late fee", "deposit", "sign-up bonus", "birthday bonus", "model code", "serial prefix", "founding year",
    "founder", "supervisor", "head buyer", "lead designer", "beam distance", "flow rate", "filter life",
    "max load", "hull length", "seat height", "fabric denier", "zipper type", "lining", "insulation", "fill weight",
    "packed size", "pole material", "stake count", "door count", "ceiling height", "torso range", "hip belt size",
    "sole material", "drop", "stack height", "lace type", "closing time", "parking spots", "service desk",
    "pickup window", "loyalty tier", "renewal fee", "annual fee", "refund window", "trial period", "cancellation fee",
    "booking fee", "group size", "age limit", "meeting point", "start date", "end date", "guide", "instructor",
    "mascot", "motto", "slogan", "tracking prefix", "order code", "voucher code", "support line", "escalation contact",
    "head office", "warehouse", "ship date", "delivery fee", "handling fee", "restocking fee", "reward rate",
    "point value", "minimum age", "checkout limit", "card limit", "storage temperature", "drying method",
    "wash setting", "recommended cleaner", "spare part", "replacement cost", "charging time", "charging port",
    "water resistance", "wind rating", "snow load", "UV rating", "noise level", "fuel type", "fuel use",
)  # fmt: skip
_UNITS = (
    "BTU", "lumens", "liters", "mm", "inches", "grams", "hours", "days", "minutes", "points", "square feet",
    "business days", "feet", "miles", "watts", "ounces", "pounds", "meters", "people", "percent", "cm", "kg",
)  # fmt: skip
_THINGS = (
    "tennis balls", "wool socks", "spare batteries", "a repair kit", "a stuff sack", "a mesh bag", "warm water",
    "mild soap", "a soft brush", "down wash", "seam sealer", "a cotton cloth", "a dry bag", "a pump sack",
    "aluminum", "nylon", "polyester", "merino wool", "recycled down", "carbon fiber", "rubber", "canvas",
)  # fmt: skip


_CODE_LETTERS = "ABCDEFGHKLMNPRSTVWXZ"


def _generic_value(rng: random.Random) -> Callable[[random.Random], str]:
    unit = rng.choice(_UNITS)
    makers: list[Callable[[random.Random], str]] = [
        lambda r: f"{r.choice([r.randint(2, 99), r.randint(100, 999), r.randint(1, 30) * 1000]):,} {unit}",
        lambda r: f"{r.randint(1, 99) / 10:g} {unit}",
        lambda r: "".join(r.choice(_CODE_LETTERS) for _ in range(r.randint(2, 4))) + r.choice(["", "7", "-40"]),
        _person,
        lambda r: str(r.randint(1950, 2025)),
        lambda r: r.choice(_THINGS),
        _price,
        _date,
        _time,
        _phone,
    ]
    return rng.choice(makers)


def generic_attribute(rng: random.Random, noun: str) -> Attribute:
    """An attribute named by `noun` (drawn from a long list), with a value of a kind drawn per lesson."""
    sentences = (
        "The {noun} of the {e} is {v}.", "The {e} {noun} is {v}.", "The {e} has a {noun} of {v}.",
        "For the {e}, the {noun} is {v}.",
    )  # fmt: skip
    questions = (
        "What is the {noun} of the {e}?", "What {noun} does the {e} have?", "What is the {e} {noun}?",
        "Tell me the {noun} of the {e}.", "Which {noun} does the {e} have?",
    )  # fmt: skip
    return Attribute(
        noun,
        _generic_value(rng),
        tuple(t.replace("{noun}", noun) for t in sentences),
        tuple(t.replace("{noun}", noun) for t in questions),
    )


@dataclass(frozen=True)
class Document:
    source: str  # a file name, as retrieved chunks show it
    entity: str
    facts: dict[str, tuple[str, str]]  # attribute → (value, the sentence that states it)

    fillers: tuple[str, ...] = ()
    heading: str = ""

    @property
    def text(self) -> str:
        """Laid out as the sample documents are: a title, plain sentences, a heading, one fact per line."""
        return "\n".join(
            [f"{self.entity[0].upper()}{self.entity[1:]}", "", *self.fillers, "", self.heading, ""]
            + [sentence for _, sentence in self.facts.values()]
        )


class Ask(NamedTuple):
    question: str
    fact: str  # the value the answer must contain
    answer: str  # the sentence of the context that states it


# Later questions about the same context, as further turns. Several answers per context give several times the
# reading practice for the cost of reading the context once; the first turn is always the RAG prompt itself.
FOLLOW_UP = "Question: {question}\n\nAnswer the question from the context."


@dataclass(frozen=True)
class Lesson:
    question: str
    fact: str  # the value the answer must contain
    answer: str  # the sentence of the context that states it
    chunks: tuple[Chunk, ...]  # the answer's document among distractors, in retrieval order
    follow_ups: tuple[Ask, ...] = ()
    rivals: int = 0  # distractors that state the asked attribute too (for other entities)

    def messages(self, rag_messages: RagMessages) -> list[dict[str, str]]:
        """The exact conversation the RAG pipeline sends, with the answer as the assistant's turn (then the
        follow-up questions and their answers)."""
        messages = [*rag_messages(self.question, self.chunks), {"role": "assistant", "content": self.answer}]
        for ask in self.follow_ups:
            messages.append({"role": "user", "content": FOLLOW_UP.format(question=ask.question)})
            messages.append({"role": "assistant", "content": ask.answer})
        return messages


def _entity(rng: random.Random, family: str) -> str:
    first = _name(rng, _FIRST)
    name = f"{first} {_name(rng, _SECOND)}" if rng.random() < 0.5 else first
    if family == "store":
        return rng.choice([f"{name} store", f"{name} outlet", f"{name} rental desk", f"{name} repair shop"])
    if family == "program":
        return f"{name} {rng.choice(_PROGRAMS)}"
    number = rng.choice(["", f" {rng.randint(1, 9)}", f" {rng.randint(2, 9) * 100}", f" X{rng.randint(1, 5)}"])
    return f"{name}{number} {rng.choice(_KINDS)}"


def _document(rng: random.Random, entity: str, attributes: Sequence[Attribute], fillers: bool) -> Document:
    facts = {}
    for attribute in attributes:
        value = attribute.value(rng)
        facts[attribute.name] = (value, rng.choice(attribute.sentences).format(e=entity, v=value))
    source = entity.lower().replace(" ", "-") + rng.choice([".md", ".txt"])
    filled = tuple(f.format(e=entity) for f in rng.sample(_FILLERS, rng.randint(0, 2))) if fillers else ()
    return Document(source, entity, facts, filled, rng.choice(_HEADINGS))


FAMILIES = {"product": PRODUCT_ATTRIBUTES, "store": STORE_ATTRIBUTES, "program": PROGRAM_ATTRIBUTES}


def _ask(rng: random.Random, attribute: Attribute, document: Document, varied: bool = True) -> Ask:
    value, sentence = document.facts[attribute.name]
    question = rng.choice(attribute.questions).format(e=document.entity)
    if varied and rng.random() < 0.25:  # questions name things with words the document does not use ("the new X")
        question = question.replace(f"the {document.entity}", f"the {rng.choice(_MODIFIERS)} {document.entity}", 1)
    return Ask(question, value, sentence)


def lesson(
    rng: random.Random, distractors: int = 2, questions: int = 1, varied: bool = True, facts: tuple[int, int] = (3, 7)
) -> Lesson:
    """`questions` questions over one context: the first about the answer's document, which `distractors` others of
    the same kind surround (most stating the asked attribute too, for other entities), shuffled as retrieval might
    rank them; the follow-ups about any of its documents. Each document states `facts` (fewest, most) facts.
    `varied` adds invented attributes, filler sentences and questions that name things with words the document does
    not use; the first lessons a model reads are plain, with one fact and no distractor."""
    family = rng.choices(list(FAMILIES), weights=[0.5, 0.25, 0.25])[0]
    # Invented attributes (`varied`), and as many more as documents of many facts need beyond the family's own.
    extra = max(0, facts[1] - len(FAMILIES[family]))
    nouns = rng.sample(_ATTRIBUTE_NOUNS, (rng.randint(1, 3) if varied else 0) + extra)
    attributes = [*FAMILIES[family], *(generic_attribute(rng, noun) for noun in nouns)]
    count = min(rng.randint(*facts), len(attributes))
    asked = rng.choice(attributes)
    entities: list[str] = []
    while len(entities) < distractors + 1:
        if (candidate := _entity(rng, family)) not in entities:
            entities.append(candidate)
    documents = []
    for index, entity in enumerate(entities):
        stated = rng.sample(attributes, count)
        if asked not in stated and (index == 0 or rng.random() < 0.8):  # most distractors are rivals
            stated[0] = asked
        rng.shuffle(stated)
        documents.append(_document(rng, entity, stated, varied))
    by_name = {a.name: a for a in attributes}
    first = _ask(rng, asked, documents[0], varied)
    others = [(d, name) for d in documents for name in d.facts if (d, name) != (documents[0], asked.name)]
    rng.shuffle(others)
    follow_ups = tuple(_ask(rng, by_name[name], d, varied) for d, name in others[: questions - 1])
    rivals = sum(asked.name in d.facts for d in documents[1:])
    rng.shuffle(documents)
    return Lesson(*first, tuple((d.source, d.text) for d in documents), follow_ups, rivals)


def lessons(
    count: int,
    seed: int = 0,
    distractors: tuple[int, int] = (0, 2),
    questions: int = 1,
    varied: bool = True,
    facts: tuple[int, int] = (3, 7),
) -> list[Lesson]:
    """`count` lessons, seeded; each context holds the answer's document and 0–2 distractors by default (the RAG
    pipeline sends top-k chunks, 3 by default)."""
    rng = random.Random(seed)
    return [lesson(rng, rng.randint(*distractors), questions, varied, facts) for _ in range(count)]


def invented_words() -> set[str]:
    """Every listed word an invented name, street, person or color is made of (coined words aside), for the test
    that keeps them apart from the sample data's."""
    parts = [*_FIRST, *_SECOND, *_STREETS, *_PEOPLE_FIRST, *_PEOPLE_LAST, *_COLOR_WORDS]
    return set(parts) | {word for color in _COLORS for word in color.split()}
