"""The offline demo model: a small Llama the product trains itself from its sample data.

Without network access no instruct model can be downloaded, so on first run the product builds
(seeded, a few minutes on 2 CPU cores, cached):

1. a byte-level BPE tokenizer with a chat template, trained on the sample texts;
2. a small Llama base model trained to *read*: given retrieved chunks and a question, answer
   with the sentence of the context that the question is about. Every number in a training
   example is swapped for another number of the documents (the same swap within one example),
   so the only way to get a price or a phone number right is to copy it from the context: the
   base model learns to read, not the facts, and facts that only the documents hold stay
   unknown to it without retrieval;
3. a LoRA adapter trained on the sample fine-tuning set (no context), which teaches the brand
   voice and the facts that set covers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from adapters.datasets import ChatExample, tokenize_for_training
from adapters.jobs.events import JobEvent, Step
from adapters.training.backends import choose_backend
from adapters.training.common import FitSettings, LoraSettings, TokenizedExample, answer_loss, use_bf16
from adapters.training.train import TrainSpec, train

if TYPE_CHECKING:
    from adapters.training.loop import LoopReport

logger = logging.getLogger(__name__)

BUILDER_VERSION = "8"  # part of the cache key: a change to how the model is built builds it again
DEMO_MODEL_NAME = "pinecrest-demo-llama"
DEMO_ADAPTER_NAME = "pinecrest-voice"
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

Chunk = tuple[str, str]  # (source file name, text)
RagMessages = Callable[[str, Sequence[Chunk]], list[dict[str, str]]]


@dataclass(frozen=True)
class DemoSpec:
    """Size and training budget of the demo model; tests use a much smaller one.

    The base model trains in three phases: passages said twice (copying, the skill reading
    rests on: a small model learns it only from short, dense examples), then questions over
    short passages (a few sentences around the answer), then over whole retrieved chunks as the
    RAG pipeline sends them. The reading phases also train on the prompt tokens
    (`context_loss_weight`), which teaches the documents' language far faster than answers alone.
    """

    vocab_size: int = 4096
    hidden_size: int = 128
    intermediate_size: int = 320
    layers: int = 2
    heads: int = 4
    max_positions: int = 1024
    window_sentences: int = 5
    copy_steps: int = 700
    window_steps: int = 300
    window_batch_size: int = 16
    window_learning_rate: float = 3e-3
    base_steps: int = 300
    base_batch_size: int = 4
    base_learning_rate: float = 2e-3
    context_loss_weight: float = 1.0
    max_context_chunks: int = 3
    adapter_epochs: float = 20.0
    adapter_learning_rate: float = 4e-3
    adapter_batch_size: int = 16
    seed: int = 0
    max_seconds: float = 280.0  # safety cap for the whole build on a slow machine


# "tiny" builds in seconds, for tests and quick checks of the wiring; its answers are noise.
DEMO_SIZES = {
    "small": DemoSpec(),
    "tiny": DemoSpec(
        vocab_size=1024,
        hidden_size=32,
        intermediate_size=64,
        layers=2,
        heads=2,
        max_positions=2048,
        copy_steps=4,
        window_steps=4,
        window_batch_size=4,
        base_steps=4,
        base_batch_size=2,
        adapter_epochs=3.0,
        max_seconds=60.0,
    ),
}


@dataclass(frozen=True)
class DemoCorpus:
    chunks: Sequence[Chunk]
    finetune: Sequence[ChatExample]
    rag_messages: RagMessages  # the exact prompt the RAG pipeline sends, so training matches use

    def digest(self) -> str:
        digest = hashlib.sha256()
        for source, text in self.chunks:
            digest.update(f"{source}\0{text}\0".encode())
        for example in self.finetune:
            digest.update(json.dumps(example.messages).encode())
        digest.update(json.dumps(self.rag_messages("Q?", [("S", "C")])).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class DemoModel:
    base_path: Path
    adapter_path: Path
    info: dict


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


def reading_examples(
    corpus: DemoCorpus, count: int, max_chunks: int, rng: random.Random, window: int | None = None
) -> list[list[dict[str, str]]]:
    """Conversations (RAG prompt → the answering sentence) built from the knowledge base.

    With `window`, each context passage is cut down to a few sentences around the answer
    (and random sentences for distractors): short examples, many per second, from which the
    model learns to copy before it meets whole chunks.
    """
    chunk_sentences = [sentences(text) for _, text in corpus.chunks]
    pool = number_pool([text for _, text in corpus.chunks])
    candidates = [(i, j) for i, found in enumerate(chunk_sentences) for j in range(len(found))]
    if not candidates:
        raise ValueError("the knowledge base has no sentences to learn reading from")

    def passage(index: int, around: int | None) -> str:
        if window is None:
            return corpus.chunks[index][1]
        found = chunk_sentences[index] or [corpus.chunks[index][1]]
        size = rng.randint(2, window)
        centre = around if around is not None else rng.randrange(len(found))
        start = max(0, min(centre - rng.randint(0, size - 1), len(found) - size))
        return " ".join(found[start : start + size])

    conversations = []
    for _ in range(count):
        target, position = rng.choice(candidates)
        sentence = chunk_sentences[target][position]
        others = [i for i in range(len(corpus.chunks)) if i != target]
        picked = [target, *rng.sample(others, min(len(others), rng.randint(0, max_chunks - 1)))]
        rng.shuffle(picked)
        passages = [passage(i, position if i == target else None) for i in picked]
        texts = perturb_digits([*passages, sentence], rng, pool)
        chunks = [(corpus.chunks[i][0], text) for i, text in zip(picked, texts[:-1], strict=True)]
        # Asked about the perturbed sentence, so names like "Summit 2" match the context.
        messages = corpus.rag_messages(synthesize_question(texts[-1], rng), chunks)
        conversations.append([*messages, {"role": "assistant", "content": texts[-1]}])
    return conversations


def copy_passages(corpus: DemoCorpus, count: int, max_sentences: int, rng: random.Random) -> list[str]:
    """Texts that say a short passage twice (digits randomised): predicting the second copy
    is only possible by copying the first, which is how a small model learns to copy at all."""
    chunk_sentences = [found for found in (sentences(text) for _, text in corpus.chunks) if found]
    pool = number_pool([text for _, text in corpus.chunks])
    texts = []
    for _ in range(count):
        found = rng.choice(chunk_sentences)
        size = rng.randint(1, max_sentences)
        start = rng.randrange(max(1, len(found) - size + 1))
        (passage,) = perturb_digits([" ".join(found[start : start + size])], rng, pool)
        texts.append(f"{passage}\n{passage}")
    return texts


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    # Numbers stay whole where the vocabulary allows: a number that is one rare token is copied
    # from the context as easily as a name, while ten digit tokens are too ambiguous to copy.
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<|pad|>", eos_token="<|end|>", bos_token=None, unk_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 100_000
    return tokenizer


def _new_model(spec: DemoSpec, tokenizer):
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    # Any special token ends an answer: a role marker would start a new turn, and padding or
    # a marker inside an answer would show as nothing.
    stops = [tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS]
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, *(t for t in stops if t != tokenizer.eos_token_id)],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    return model


SHIPPED = Path(__file__).resolve().parent / "demo_weights"  # a built model kept in the repository, used when it fits


def build_key(spec: DemoSpec, corpus: DemoCorpus) -> str:
    """What the model depends on: the builder, its spec, and the corpus (documents, fine-tuning set, prompt)."""
    return hashlib.sha256(f"{BUILDER_VERSION}{asdict(spec)}{corpus.digest()}".encode()).hexdigest()[:12]


def cache_dir(home: Path, spec: DemoSpec, corpus: DemoCorpus) -> Path:
    return home / "models" / f"demo-{build_key(spec, corpus)}"


def _read(folder: Path) -> DemoModel | None:
    info_file = folder / "build_info.json"
    if not info_file.exists():
        return None
    return DemoModel(folder / "base", folder / "adapter", json.loads(info_file.read_text()))


def shipped(spec: DemoSpec, corpus: DemoCorpus) -> DemoModel | None:
    """The model kept in the repository, when it was built from exactly this spec and corpus."""
    found = _read(SHIPPED)
    return found if found is not None and found.info.get("key") == build_key(spec, corpus) else None


def load_or_build(
    home: Path,
    corpus: DemoCorpus,
    spec: DemoSpec = DemoSpec(),
    log: Callable[[str], None] = logger.info,
    rebuild: bool = False,
) -> DemoModel:
    """The repository's model when it fits, else the cached one, else a new build (cached). `rebuild` builds anew;
    with the default spec it also replaces the repository's copy (`prepare --rebuild-demo`)."""
    if not rebuild and (found := shipped(spec, corpus) or _read(cache_dir(home, spec, corpus))) is not None:
        return found
    target = SHIPPED if rebuild and spec == DemoSpec() else cache_dir(home, spec, corpus)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename at the end, so a crash never leaves half a model.
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        build(work, corpus, spec, log)
        if rebuild and target.exists():
            shutil.rmtree(target)
        try:
            os.rename(work, target)
        except OSError:  # another process finished first; keep its copy
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    found = _read(target)
    if found is None:  # build() writes build_info.json last
        raise RuntimeError(f"the demo model build left no build_info.json in {target}")
    return found


def build(out: Path, corpus: DemoCorpus, spec: DemoSpec, log: Callable[[str], None] = logger.info) -> dict:
    started = time.perf_counter()
    rng = random.Random(spec.seed)
    short = reading_examples(
        corpus, spec.window_steps * spec.window_batch_size, spec.max_context_chunks, rng, spec.window_sentences
    )
    whole = reading_examples(corpus, spec.base_steps * spec.base_batch_size, spec.max_context_chunks, rng)
    texts = [text for _, text in corpus.chunks]
    texts += [m["content"] for example in corpus.finetune for m in example.messages]
    texts += [m["content"] for conversation in whole[:500] for m in conversation]
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    log(f"demo model: tokenizer with {len(tokenizer)} tokens ({time.perf_counter() - started:.1f} s)")

    model = _new_model(spec, tokenizer)
    parameters = sum(p.numel() for p in model.parameters())
    copies = [
        (ids, list(ids))
        for ids in tokenizer(copy_passages(corpus, spec.copy_steps * spec.window_batch_size, 2, rng))["input_ids"]
    ]
    phases = {}
    base_deadline = started + spec.max_seconds * 0.82  # the rest is the adapter's
    for phase, examples, steps, batch_size, learning_rate in (
        ("copying", copies, spec.copy_steps, spec.window_batch_size, spec.window_learning_rate),
        (
            "short passages",
            _tokenized(tokenizer, short, spec),
            spec.window_steps,
            spec.window_batch_size,
            spec.window_learning_rate,
        ),
        (
            "whole chunks",
            _tokenized(tokenizer, whole, spec),
            spec.base_steps,
            spec.base_batch_size,
            spec.base_learning_rate,
        ),
    ):
        if not steps:
            continue
        settings = FitSettings(
            learning_rate=learning_rate,
            max_steps=steps,
            batch_size=batch_size,
            max_seq_length=spec.max_positions,
            weight_decay=0.01,
            seed=spec.seed,
            max_seconds=max(1.0, base_deadline - time.perf_counter()),
            context_loss_weight=spec.context_loss_weight,
            eval_every=0,
        )
        progress = _progress(log, f"base model, {phase}")
        report = _pretrain(model, examples, settings, tokenizer.pad_token_id, out, progress)
        phases[phase] = {"steps": report.steps, "loss": report.train_loss, "seconds": round(report.seconds, 1)}
    base_dir = out / "base"
    model.save_pretrained(str(base_dir))
    tokenizer.save_pretrained(str(base_dir))
    log(f"demo model: base model trained ({time.perf_counter() - started:.1f} s)")

    remaining = max(10.0, spec.max_seconds - (time.perf_counter() - started))
    adapter_fit = FitSettings(
        learning_rate=spec.adapter_learning_rate,
        epochs=spec.adapter_epochs,
        batch_size=spec.adapter_batch_size,
        max_seq_length=256,
        seed=spec.seed,
        max_seconds=remaining,
    )
    # The adapter trains exactly as a user's fine-tune does, on the base model just saved, on the same device.
    adapter_spec = TrainSpec(
        str(base_dir), list(corpus.finetune), [], LoraSettings(), adapter_fit, out / "adapter", str(model.device)
    )
    adapter_report = train(adapter_spec, choose_backend("transformers"), _progress(log, "adapter"))
    info = {
        "key": build_key(spec, corpus),
        "name": DEMO_MODEL_NAME,
        "adapter": DEMO_ADAPTER_NAME,
        "builder_version": BUILDER_VERSION,
        "spec": asdict(spec),
        "parameters": parameters,
        "base": phases,
        "adapter_training": {
            "steps": adapter_report.steps,
            "loss": adapter_report.train_loss,
            "seconds": round(adapter_report.seconds, 1),
            "examples": len(corpus.finetune),
        },
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "build_info.json").write_text(json.dumps(info, indent=2))
    log(f"demo model: adapter trained, loss {adapter_report.train_loss:.2f}; built in {info['build_seconds']:.0f} s")
    return info


def _pretrain(
    model: Any,
    examples: list[TokenizedExample],
    fit: FitSettings,
    pad_id: int,
    out: Path,
    on_event: Callable[[JobEvent], None],
) -> LoopReport:
    """Trains every weight of `model` (no LoRA) through the loop user fine-tunes use; with
    `fit.context_loss_weight` > 0 the prompt tokens count too."""
    from adapters.training import loop as trainer_loop

    loss = partial(answer_loss, context_weight=fit.context_loss_weight)
    scratch = out / ".trainer"  # Trainer wants a folder; nothing is saved there
    trainer = trainer_loop.build_trainer(model, examples, fit, pad_id, loss, scratch, use_bf16(model.device))
    try:
        return trainer_loop.run_loop(trainer, fit, [], pad_id, on_event, lambda: False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _tokenized(tokenizer, conversations: list[list[dict[str, str]]], spec: DemoSpec) -> list:
    return [tokenize_for_training(tokenizer, c, spec.max_positions) for c in conversations]


def _progress(log: Callable[[str], None], what: str) -> Callable[[JobEvent], None]:
    def report(event: JobEvent) -> None:
        if isinstance(event, Step) and (event.step == event.total_steps or event.step % 100 == 0):
            log(f"demo model: {what} step {event.step}/{event.total_steps} loss {event.loss:.3f}")

    return report
