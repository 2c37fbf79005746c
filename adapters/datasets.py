"""Training data: chat, Alpaca, ShareGPT and CSV files validated into chat examples; statistics,
duplicates, a hold-out split, and tokenisation with the loss on answers only.

Validation collects every problem (up to a cap) instead of stopping at the first one, so a user
can fix a file in one pass; each problem names the file, the line and the field.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from adapters.files import atomic_write_text

IGNORE_INDEX = -100  # label value the loss skips (prompt tokens, padding)
ROLES = ("system", "user", "assistant")
FORMATS = ("chat", "alpaca", "sharegpt", "csv")
FORMAT_NAMES = {"chat": "chat", "alpaca": "Alpaca", "sharegpt": "ShareGPT", "csv": "CSV"}
MAX_DATASET_BYTES = 200_000_000  # far beyond a quick LoRA run; larger files would stall the page
CHAT_ROLES = {role: role for role in ROLES}
# ShareGPT exports name the speakers differently depending on the tool that wrote them.
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
    "system": "system",
}
CSV_COLUMNS = ("question", "answer")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")

Messages = tuple[dict[str, str], ...]
Report = Callable[[str | None, str], None]  # (field, message) for the record being read


class DatasetError(UserError):
    """A dataset problem; the message names the file, line and field."""

    def __init__(self, message: str, issues: Sequence[DatasetIssue] = ()) -> None:
        super().__init__(message)
        self.issues = list(issues)


@dataclass(frozen=True)
class DatasetIssue:
    file: str
    line: int | None
    field: str | None
    message: str
    item: int | None = None  # 1-based position in a JSON list: compact files hold many items per line

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", line {self.line}"
        if self.item is not None:
            where += f" (item {self.item})" if self.line is not None else f", item {self.item}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ChatExample:
    messages: Messages
    line: int = 0

    @property
    def question(self) -> str:
        return next(m["content"] for m in self.messages if m["role"] == "user")

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class LoadedDataset:
    path: Path
    format: str | None  # one of FORMATS; None when no record said which format the file is in
    examples: list[ChatExample]
    issues: list[DatasetIssue]
    rows: int = 0  # records read (non-blank lines, list items or CSV rows), valid or not

    @property
    def ok(self) -> bool:
        return not self.issues and bool(self.examples)

    def check(self) -> list[ChatExample]:
        """The examples, or a DatasetError listing every problem (for callers about to train)."""
        if self.ok:
            return self.examples
        raise DatasetError("\n".join(map(str, self.issues)), self.issues)


class _Issues:
    """Problems up to a cap; beyond it only counted, since a broken 10k-line file has 10k of them."""

    def __init__(self, file: str, cap: int) -> None:
        self.file, self.cap = file, max(cap, 1)
        self.items: list[DatasetIssue] = []
        self.total = 0

    def add(self, line: int | None, field: str | None, message: str, item: int | None = None) -> None:
        self.total += 1
        if len(self.items) < self.cap:
            self.items.append(DatasetIssue(self.file, line, field, message, item))

    def reporter(self, line: int, item: int | None) -> Report:
        return partial(self.add, line, item=item)

    def finish(self) -> list[DatasetIssue]:
        hidden = self.total - len(self.items)
        noun = "problem" if hidden == 1 else "problems"
        more = [DatasetIssue(self.file, None, None, f"… and {hidden} more {noun}")] if hidden else []
        return self.items + more


@dataclass(frozen=True)
class _Unreadable:
    """A record that could not even be parsed; counted as a row with a problem."""

    message: str


Record = tuple[int, int | None, Any]  # (line, item in a JSON list, parsed value or _Unreadable)


# ---------------------------------------------------------------- values and records


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    names = {int: "a number", float: "a number", str: "text", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _text(record: dict, key: str, field: str, report: Report, required: bool = True) -> str | None:
    """The string at `key`; an optional one that is absent reads as ""; None after a reported problem."""
    value = record.get(key)
    if value is None:
        if required:
            report(field, "is missing")
            return None
        return ""
    if not isinstance(value, str):
        report(field, f"must be text, got {_kind(value)}")
        return None
    if required and not value.strip():
        report(field, "is empty")
        return None
    return value


def _turn(
    turn: Any, where: str, keys: Sequence[tuple[str, str]], roles: dict[str, str], report: Report
) -> dict[str, str] | None:
    if not isinstance(turn, dict):
        report(where, f"must be an object with '{keys[0][0]}' and '{keys[0][1]}', got {_kind(turn)}")
        return None
    role_key, content_key = next((pair for pair in keys if pair[0] in turn), keys[0])
    raw = turn.get(role_key)
    role = roles.get(raw.strip().lower()) if isinstance(raw, str) else None
    if role is None:
        shown = "missing" if raw is None else repr(raw)
        report(f"{where}.{role_key}", f"is {shown}; expected one of {', '.join(roles)}")
    content = _text(turn, content_key, f"{where}.{content_key}", report)
    return {"role": role, "content": content} if role and content is not None else None


def _list_problem(value: Any) -> str:
    if value is None:
        return "is missing"
    return "is an empty list" if value == [] else f"must be a list of messages, got {_kind(value)}"


def _conversation(
    record: dict, list_key: str, keys: Sequence[tuple[str, str]], roles: dict[str, str], report: Report
) -> Messages | None:
    turns = record.get(list_key)
    if not isinstance(turns, list) or not turns:
        report(list_key, _list_problem(turns))
        return None
    messages = [_turn(turn, f"{list_key}[{index}]", keys, roles, report) for index, turn in enumerate(turns)]
    if None in messages:
        return None
    if messages[-1]["role"] != "assistant":
        report(f"{list_key}[{len(messages) - 1}]", "the last message must be the assistant's answer (what is learnt)")
    if not any(m["role"] == "user" for m in messages):
        report(list_key, "needs at least one user message")
    return tuple(messages)


def _chat(record: dict, report: Report) -> Messages | None:
    return _conversation(record, "messages", [("role", "content")], CHAT_ROLES, report)


def _sharegpt(record: dict, report: Report) -> Messages | None:
    return _conversation(record, "conversations", [("from", "value"), ("role", "content")], SHAREGPT_ROLES, report)


def _qa(question: str, answer: str, system: str = "") -> Messages:
    head = ({"role": "system", "content": system},) if system.strip() else ()
    return (*head, {"role": "user", "content": question}, {"role": "assistant", "content": answer})


def _alpaca(record: dict, report: Report) -> Messages | None:
    instruction = _text(record, "instruction", "instruction", report)
    extra = _text(record, "input", "input", report, required=False)
    output = _text(record, "output", "output", report)
    if instruction is None or extra is None or output is None:
        return None
    return _qa(f"{instruction}\n\n{extra}" if extra.strip() else instruction, output)


def _csv_row(record: dict, report: Report) -> Messages | None:
    question = _text(record, "question", "question", report)
    answer = _text(record, "answer", "answer", report)
    system = _text(record, "system", "system", report, required=False)
    if question is None or answer is None or system is None:
        return None
    return _qa(question, answer, system)


_PARSERS: dict[str, Callable[[dict, Report], Messages | None]] = {
    "chat": _chat,
    "alpaca": _alpaca,
    "sharegpt": _sharegpt,
    "csv": _csv_row,
}


def _detect(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if "messages" in value:
        return "chat"
    if "conversations" in value:
        return "sharegpt"
    if "instruction" in value or "output" in value:
        return "alpaca"
    return None


def _record_messages(value: Any, fmt: str | None, chosen: bool, report: Report) -> Messages | None:
    if isinstance(value, _Unreadable):
        report(None, value.message)
        return None
    if not isinstance(value, dict):
        report(None, f"must be a JSON object, got {_kind(value)}")
        return None
    if fmt is None:
        report(
            None,
            "has none of the fields 'messages' (chat), 'instruction'/'output' (Alpaca) or 'conversations' (ShareGPT)",
        )
        return None
    kind = _detect(value) if fmt != "csv" else None
    if kind not in (None, fmt):
        source = "the format chosen" if chosen else "its first example"
        looks, read = FORMAT_NAMES[kind], FORMAT_NAMES[fmt]
        report(None, f"looks like {looks}, but the file is read as {read} ({source}); use one format per file")
        return None
    return _PARSERS[fmt](value, report)


def _convert(records: Iterable[Record], fmt: str | None, issues: _Issues) -> tuple[str | None, list[ChatExample], int]:
    """Chat examples of the records; the first record whose fields say its format fixes the file's format."""
    chosen, examples, rows = fmt is not None, [], 0
    for line, item, value in records:
        rows += 1
        fmt = fmt or _detect(value)
        before = issues.total
        messages = _record_messages(value, fmt, chosen, issues.reporter(line, item))
        if messages is not None and issues.total == before:
            examples.append(ChatExample(messages, line))
    return fmt, examples, rows


# ---------------------------------------------------------------- containers


def _jsonl_records(text: str) -> Iterator[Record]:
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield number, None, json.loads(raw)
        except json.JSONDecodeError as error:
            yield number, None, _Unreadable(f"not valid JSON ({error.msg} at column {error.colno})")


def _json_list_records(text: str, issues: _Issues) -> Iterator[Record]:
    """Items of a top-level JSON list with the line each starts on, decoded one at a time."""
    decoder = json.JSONDecoder()
    position = _JSON_SPACE.match(text, _JSON_SPACE.match(text).end() + 1).end()  # past the '['
    line, counted, item = 1, 0, 0
    try:
        while not text.startswith("]", position):
            if item:
                if not text.startswith(",", position):
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
                position = _JSON_SPACE.match(text, position + 1).end()
            value, end = decoder.raw_decode(text, position)
            line, counted, item = line + text.count("\n", counted, position), position, item + 1
            yield line, item, value
            position = _JSON_SPACE.match(text, end).end()
        trailing = _JSON_SPACE.match(text, position + 1).end()
        if trailing < len(text):
            raise json.JSONDecodeError("Extra data", text, trailing)
    except json.JSONDecodeError as error:
        issues.add(error.lineno, None, f"not valid JSON ({error.msg} at column {error.colno})")


def _csv_header(row: list[str], line: int, issues: _Issues) -> list[str] | None:
    names = [cell.strip().lower() for cell in row]
    missing = [column for column in CSV_COLUMNS if column not in names]
    if missing:
        found = ", ".join(cell.strip() for cell in row)
        wanted = " and ".join(f"'{column}'" for column in missing)
        plural = "s" if len(missing) > 1 else ""
        issues.add(line, None, f"the header has no {wanted} column{plural} (found: {found}); expected question,answer")
        return None
    return names


def _csv_delimiter(text: str) -> str:
    """Comma, unless the header line only has semicolons or tabs (spreadsheet exports in some locales)."""
    header = text.split("\n", 1)[0]
    return next((mark for mark in (",", ";", "\t") if mark in header), ",")


def _csv_records(text: str, issues: _Issues) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_csv_delimiter(text), strict=True)
    header: list[str] | None = None
    end = 0
    try:
        for row in reader:
            start, end = end + 1, reader.line_num  # a quoted value may span several lines
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = _csv_header(row, start, issues)
                if header is None:
                    return
            elif len(row) > len(header):
                message = f"has {len(row)} values but the header has {len(header)} columns; quote values with commas"
                yield start, None, _Unreadable(message)
            else:
                yield start, None, dict(zip(header, row, strict=False))
    except csv.Error as error:
        issues.add(end + 1, None, f"not valid CSV ({error}); check the quotes")  # where the broken row starts


def _container(path: Path, fmt: str | None) -> str | None:
    suffix = path.suffix.lower()
    if fmt == "csv" or (fmt is None and suffix == ".csv"):
        return "csv"
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".json" or fmt is not None:
        return "json"
    return None


def _read_text(path: Path, issues: _Issues) -> str | None:
    if path.is_dir():
        issues.add(None, None, "is a folder, not a file")
        return None
    size = path.stat().st_size  # FileNotFoundError for a missing file: a caller bug, not a data problem
    if size > MAX_DATASET_BYTES:
        issues.add(None, None, f"is {size / 1e6:.0f} MB; the limit is {MAX_DATASET_BYTES / 1e6:.0f} MB")
        return None
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # tolerate the byte-order mark spreadsheet programs add
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        issues.add(line, None, f"is not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8")
        return None
    if not text.strip():
        issues.add(None, None, "the file is empty")
        return None
    return text


def _records(text: str, container: str, issues: _Issues) -> Iterator[Record]:
    if container == "csv":
        return _csv_records(text, issues)
    if container == "json" and text.lstrip(" \t\n\r").startswith("["):  # the whitespace JSON allows
        return _json_list_records(text, issues)
    return _jsonl_records(text)  # also .json files that hold one object per line


def _rows_word(container: str, count: int) -> str:
    word = {"csv": "row", "jsonl": "line"}.get(container, "item")
    return f"{count} {word}" + ("s" if count != 1 else "")


def load_dataset(path: str | Path, format: str | None = None, max_issues: int = 50) -> LoadedDataset:
    """Read a training file into chat examples and every problem found (up to `max_issues`).

    `.jsonl` holds one chat, Alpaca or ShareGPT object per line (the first one says which),
    `.json` a list of them, `.csv` question,answer[,system] columns. `format` overrides the guess.
    """
    if format is not None and format not in FORMATS:
        raise UserError(f"format is {format!r}; expected one of {', '.join(FORMATS)}")
    path = Path(path)
    issues = _Issues(path.name, max_issues)
    container = _container(path, format)
    if container is None:
        issues.add(None, None, f"unknown file type '{path.suffix}'; use .jsonl, .json or .csv")
        return LoadedDataset(path, format, [], issues.finish())
    text = _read_text(path, issues)
    if text is None:
        return LoadedDataset(path, format, [], issues.finish())
    fmt = "csv" if container == "csv" else format
    found, examples, rows = _convert(_records(text, container, issues), fmt, issues)
    if not rows and not issues.total:
        issues.add(None, None, "has no examples")
    result = issues.finish()
    if rows and not examples:
        summary = f"no valid examples: {_rows_word(container, rows)}, all with problems (see above)"
        result.append(DatasetIssue(path.name, None, None, summary))
    return LoadedDataset(path, found, examples, result, rows)


def load_chat_jsonl(path: str | Path) -> list[ChatExample]:
    """Read `{"messages": [...]}` lines; raise DatasetError naming file, line and field of the first problem."""
    loaded = load_dataset(path, format="chat", max_issues=1)
    if loaded.issues:
        raise DatasetError(str(loaded.issues[0]), loaded.issues)
    return loaded.examples


def write_chat_jsonl(examples: Iterable[ChatExample], path: str | Path) -> Path:
    """Save examples as chat JSONL (for a set built or edited in the page)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"messages": list(e.messages)}, ensure_ascii=False) + "\n" for e in examples]
    return atomic_write_text(path, "".join(lines))


# ---------------------------------------------------------------- duplicates, statistics, split


def _normalised(example: ChatExample) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], " ".join(m["content"].split()).casefold()) for m in example.messages)


def find_duplicates(examples: Sequence[ChatExample]) -> list[tuple[int, int]]:
    """(line of the duplicate, line of its first occurrence), ignoring case and whitespace."""
    first: dict[tuple, int] = {}
    pairs = []
    for example in examples:
        key = _normalised(example)
        if key in first:
            pairs.append((example.line, first[key]))
        else:
            first[key] = example.line
    return pairs


def token_lengths(tokenizer: Any, examples: Sequence[ChatExample], batch_size: int = 512) -> list[int]:
    """Untruncated training length of each example: the prompt as the chat template renders it,
    the answer and the end token, exactly as `tokenize_for_training` builds them."""
    lengths: list[int] = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        prompts = tokenizer.apply_chat_template(
            [list(e.messages[:-1]) for e in batch], tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer([e.answer for e in batch], add_special_tokens=False)["input_ids"]
        lengths += [len(p) + len(a) + 1 for p, a in zip(prompt_ids, answer_ids, strict=True)]
    return lengths


@dataclass(frozen=True)
class DatasetStats:
    count: int
    avg_tokens: float
    max_tokens: int
    max_seq_length: int | None
    over_max_length: int | None  # examples whose prompt training will cut (None: no limit given)
    duplicates: int
    duplicate_lines: list[tuple[int, int]]
    samples: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["duplicate_lines"] = [list(pair) for pair in self.duplicate_lines]
        return data


def dataset_stats(
    examples: Sequence[ChatExample], tokenizer: Any, max_seq_length: int | None = None, samples: int = 3
) -> DatasetStats:
    lengths = token_lengths(tokenizer, examples)
    duplicates = find_duplicates(examples)
    return DatasetStats(
        count=len(examples),
        avg_tokens=round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
        max_tokens=max(lengths, default=0),
        max_seq_length=max_seq_length,
        over_max_length=None if max_seq_length is None else sum(n > max_seq_length for n in lengths),
        duplicates=len(duplicates),
        duplicate_lines=duplicates,
        samples=[{"question": e.question, "answer": e.answer, "line": e.line} for e in examples[:samples]],
    )


def split_holdout(
    examples: Sequence[ChatExample], fraction: float = 0.1, seed: int = 0
) -> tuple[list[ChatExample], list[ChatExample]]:
    """(train, hold-out): a seeded shuffle, original order kept within each part.

    Duplicates stay on one side, or the hold-out loss would measure memorisation.
    """
    if not 0 <= fraction <= 0.5:
        raise UserError(f"hold-out fraction is {fraction}; expected between 0 and 0.5")
    if len(examples) < 2 or fraction == 0:
        return list(examples), []
    target = max(1, round(len(examples) * fraction))
    groups: dict[tuple, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(_normalised(example), []).append(index)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    held: set[int] = set()
    for group in order:
        if len(held) + len(group) <= target:
            held.update(group)
    if not held:  # every group is larger than the hold-out: split the smallest
        held = set(min(order, key=len)[:target])
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


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
