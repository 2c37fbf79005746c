"""Choosing each arm's next token with transformers' own logits processors, one arm at a time."""

from __future__ import annotations

from typing import Protocol

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)


class Decoding(Protocol):
    max_new_tokens: int
    min_new_tokens: int
    temperature: float
    top_p: float
    seed: int


class TokenPicker:
    """Greedy (temperature 0) or sampled with temperature and top-p, as `generate` would pick.

    Each arm has its own random generator seeded with the settings' seed, so an arm's sampled answer
    does not depend on which other arms run beside it.
    """

    def __init__(self, settings: Decoding, eos_ids: set[int], prompt_length: int, device: torch.device | str) -> None:
        self.eos_ids = eos_ids
        self.sample = settings.temperature > 0
        minimum = min(settings.min_new_tokens, settings.max_new_tokens)
        processors: list = []
        if minimum > 0 and eos_ids:
            processors.append(MinNewTokensLengthLogitsProcessor(prompt_length, minimum, sorted(eos_ids), str(device)))
        if self.sample:
            processors += [TemperatureLogitsWarper(settings.temperature), TopPLogitsWarper(settings.top_p)]
        self.processors = LogitsProcessorList(processors)
        self.generator = torch.Generator(device=device).manual_seed(settings.seed) if self.sample else None

    def pick(self, input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The next token id (a 0-d tensor) after `input_ids` (1, length), given the last position's logits."""
        scores = self.processors(input_ids, logits.float())
        if not self.sample:
            return scores[0].argmax()
        probs = torch.softmax(scores[0], dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[0]
