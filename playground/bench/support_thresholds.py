"""How the sentence-level support thresholds were chosen: `python -m playground.bench.support_thresholds`.

The sample evaluation set's reference answers stand in for answer sentences. Per reference, "supported" evidence is
text that holds its fact (a knowledge-base file, a training answer), the rest is not. For each threshold the table
gives the share of references whose best sentence of supporting text reaches it (recall), and the share for which
some sentence of unsupporting text reaches it, by cosine alone and with the number check (false support). The whole
knowledge base stands in for the retrieved chunks, so false support is an upper bound. Loads only the embedder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from adapters.datasets import load_dataset
from pipelines.embedder import resolve_embedder
from pipelines.indexing import SentenceEmbedder
from playground.config import SAMPLE_DATA
from playground.support import Evidence, numbers, split_sentences

THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8)


def _best(vector: np.ndarray, evidence: Evidence, reference: dict, keep: bool, numbered: bool = False) -> float:
    """The best cosine to a sentence of the texts that hold the fact (`keep`) or do not; with `numbered`, only texts
    that state every number of the reference count."""
    said = numbers(reference["reference"])
    cosines = evidence.vectors @ vector
    best = 0.0
    for row, owner in enumerate(evidence.owners):
        text = evidence.texts[owner]
        if (reference["fact"].lower() in text.lower()) == keep and (not numbered or said <= numbers(text)):
            best = max(best, float(cosines[row]))
    return best


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = SentenceEmbedder(resolve_embedder())
    rows = [json.loads(line) for line in (SAMPLE_DATA / "eval" / "questions.jsonl").read_text().splitlines() if line]
    files = sorted(Path(SAMPLE_DATA / "knowledge_base").iterdir())
    sets = {
        "chunks": Evidence.of([path.read_text() for path in files], embedder),
        "training": Evidence.of(
            [e.answer for e in load_dataset(SAMPLE_DATA / "finetune" / "train.jsonl").examples], embedder
        ),
    }
    references = Evidence.of([row["reference"] for row in rows], embedder)
    assert all(len(split_sentences(row["reference"])) == 1 for row in rows)
    for name, evidence in sets.items():
        held = [(v, r) for v, r in zip(references.vectors, rows, strict=True) if _best(v, evidence, r, True) > 0]
        recall = np.array([_best(v, evidence, r, True, True) for v, r in held])
        false = np.array([_best(v, evidence, r, False) for v, r in zip(references.vectors, rows, strict=True)])
        numbered = np.array([_best(v, evidence, r, False, True) for v, r in zip(references.vectors, rows, strict=True)])
        print(f"{name}: {len(held)} of {len(rows)} references have their fact there")
        for threshold in THRESHOLDS:
            print(
                f"  {threshold:.2f}: recall {np.mean(recall >= threshold):.0%}, false support by cosine alone "
                f"{np.mean(false >= threshold):.0%}, with the number check {np.mean(numbered >= threshold):.0%}"
            )


if __name__ == "__main__":
    main()
