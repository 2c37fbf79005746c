"""Chunking measured in the embedder's own tokens, on sentence boundaries where possible."""

from __future__ import annotations

import re
from copy import deepcopy
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from adapters.errors import UserError

# Chinese and Japanese end a sentence with 。！？ and no space after it.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|\n\s*\n|\n(?=\s*(?:[-*#]|\d+\.)\s)")


def _spans(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences and list items; separators stay with the preceding span."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.end() > start:
            spans.append((start, match.end()))
            start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


@component
class EmbedderTokenSplitter:
    """Splits documents into chunks of at most `split_length` tokens of the embedder's tokenizer.

    Sentences are packed whole; a sentence longer than a chunk is cut at token boundaries. Each
    chunk starts with the last sentences of the previous one, up to `split_overlap` tokens.
    Haystack's own token splitter counts tiktoken tokens, which are not what the embedder reads.
    """

    def __init__(self, tokenizer: str, split_length: int, split_overlap: int = 50) -> None:
        if split_length <= 0:
            raise UserError("split_length must be positive")
        if not 0 <= split_overlap < split_length:
            raise UserError("split_overlap must be at least 0 and less than split_length")
        self.tokenizer = tokenizer
        self.split_length = split_length
        self.split_overlap = split_overlap
        self._tokenizer: Any = None

    def warm_up(self) -> None:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, tokenizer=self.tokenizer, split_length=self.split_length, split_overlap=self.split_overlap
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedderTokenSplitter:
        return default_from_dict(cls, data)

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _pieces(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, tokens) units no longer than a chunk."""
        pieces = []
        for start, end in _spans(text):
            encoded = self._tokenizer(text[start:end], add_special_tokens=False, return_offsets_mapping=True)
            offsets = encoded["offset_mapping"]
            if len(offsets) <= self.split_length:
                pieces.append((start, end, len(offsets)))
                continue
            step = self.split_length - self.split_overlap
            for first in range(0, len(offsets), step):
                window = offsets[first : first + self.split_length]
                piece_end = end if first + self.split_length >= len(offsets) else start + window[-1][1]
                pieces.append((start + window[0][0], piece_end, len(window)))
                if first + self.split_length >= len(offsets):
                    break
        return pieces

    def split_text(self, text: str) -> list[tuple[int, int, int]]:
        """(start, end, tokens) of each chunk of `text`."""
        self.warm_up()
        pieces = self._pieces(text)
        chunks: list[tuple[int, int, int]] = []
        current: list[tuple[int, int, int]] = []
        for piece in pieces:
            if current and sum(p[2] for p in current) + piece[2] > self.split_length:
                chunks.append((current[0][0], current[-1][1], sum(p[2] for p in current)))
                overlap: list[tuple[int, int, int]] = []
                for previous in reversed(current):
                    if sum(p[2] for p in overlap) + previous[2] > self.split_overlap:
                        break
                    overlap.insert(0, previous)
                if overlap and sum(p[2] for p in overlap) + piece[2] > self.split_length:
                    overlap = []
                current = overlap
            current.append(piece)
        if current and (not chunks or current[-1][1] > chunks[-1][1]):
            chunks.append((current[0][0], current[-1][1], sum(p[2] for p in current)))
        return chunks

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        out = []
        for doc in documents:
            if not doc.content or not doc.content.strip():
                continue
            for index, (start, end, tokens) in enumerate(self.split_text(doc.content)):
                meta = deepcopy(doc.meta)
                meta.update(source_id=doc.id, split_id=index, split_idx_start=start, tokens=tokens)
                out.append(Document(content=doc.content[start:end].strip(), meta=meta))
        return {"documents": out}
