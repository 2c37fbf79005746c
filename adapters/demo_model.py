"""The offline demo model: a small Llama the product trains itself, which reads its context.

Without network access no instruct model can be downloaded, so the product brings its own, built by
`python -m playground prepare --rebuild-demo` (seeded) and kept in the repository (`demo_weights/`):

1. a byte-level BPE tokenizer with a chat template, trained on the lessons below;
2. a base model that learns to *read*: briefly to copy (spans of tokens said twice: the induction
   mechanism every later step rests on; first over a few frequent tokens, then over all of them),
   then to answer questions in the exact prompt the RAG pipeline sends, through a curriculum of
   plain invented documents (`reading_lessons`): one fact and no distractor first, then more facts
   and distractor documents, then documents as long as the knowledge base's chunks; then the
   knowledge base's chunks with every number swapped (`document_lessons`) mixed with varied
   invented lessons; last, questions worded as people ask over the chunks the embedder retrieves
   for them, the documents cut small as the product cuts them (`retrieved_lessons`). In all of them
   the answer is right only when copied from the context, so the model learns to read, not the facts;
3. a LoRA adapter trained on the sample fine-tuning set exactly as a user's fine-tune, which teaches
   the brand voice and the facts that set covers; each question also in five rewordings
   (`rewording`), without which it learnt the training questions' exact words and no fact.

The base model depends on this builder, its spec, the RAG prompt and the knowledge base; the adapter
also on the fine-tuning set, so new fine-tuning data retrains the adapter (minutes), not the base.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from adapters.datasets import IGNORE_INDEX, ChatExample
from adapters.document_lessons import document_lessons, natural_question, sentences
from adapters.jobs.events import JobEvent, Step
from adapters.reading_lessons import RagMessages, lessons
from adapters.retrieved_lessons import Embed, retrieved_lessons
from adapters.rewording import rewordings
from adapters.training.backends import choose_backend
from adapters.training.common import FitSettings, LoraSettings, TokenizedExample, _collate, answer_loss
from adapters.training.train import TrainSpec, train

logger = logging.getLogger(__name__)

BUILDER_VERSION = "12"  # part of the cache key: a change to how the model is built builds it again
DEMO_MODEL_NAME = "pinecrest-demo-llama"
DEMO_ADAPTER_NAME = "pinecrest-voice"
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class DemoSpec:
    """Size and training budget of the demo model; tests use a much smaller one.

    Copying forms after a plateau of several hundred steps even on the simplest data (random
    token spans said twice); reading lessons alone would spend thousands of steps on that plateau.
    Reading then forms only through a curriculum (`curriculum`): thrown at once into documents of
    3–7 facts among distractors, four builds read 0–4 % of held-out lessons after 1,000–1,500
    steps; starting from one fact and no distractor, the same kind of model read 52 % by step 800.
    """

    vocab_size: int = 1024
    hidden_size: int = 160
    intermediate_size: int = 480
    layers: int = 3
    heads: int = 4
    max_positions: int = 2048
    copy_steps: int = 600  # at most: the phase ends as soon as copying has formed
    copy_learning_rate: float = 2e-3  # at 3e-3 copying had not formed after 550 steps; at 2e-3 it formed by 350
    copied_loss: float = 1.0  # the smoothed copying loss below which it has formed
    copy_vocabulary: int = 64
    # Once formed on those few tokens, copying spans of every token at reading's distances: a model that had
    # copied only frequent tokens rewrote new names into ones it knew ("Harrow Bay" became "Harbor area").
    spread_copy_steps: int = 300
    spread_copy_gap: int = 300
    copy_batch_size: int = 32
    # Plain invented lessons from easy to hard, at a constant rate: (steps, fewest and most facts per document,
    # fewest and most distractor documents). Each level is first solved by copying what the last one taught.
    curriculum: tuple[tuple[int, int, int, int, int], ...] = (
        (200, 1, 1, 0, 0),
        (300, 2, 3, 0, 0),
        (300, 2, 4, 0, 1),
        (700, 3, 7, 0, 2),
        (300, 4, 12, 0, 2),  # documents as long as the knowledge base's chunks
    )
    reading_steps: int = 2100  # in all: after the curriculum, the documents' chunks mixed with varied lessons
    reading_batch_size: int = 32
    questions_per_lesson: int = 1  # a follow-up asks after the context, which a model then reads without knowing it
    max_distractors: int = 2
    document_share: float = 0.5  # of the later lessons, those over the knowledge base's chunks (numbers swapped)
    learning_rate: float = 2e-3
    probe_every: int = 250  # reading steps between checks on held-out invented lessons (0: only at the end)
    probe_lessons: int = 48
    context_loss_weight: float = 0.1
    # Last, lessons posed as retrieval poses them (`retrieved_lessons`), over the documents cut at each of these
    # (tokens, overlap), mixed with varied invented lessons. Before this phase the model found the asked product in
    # real retrieved chunks but seldom the sentence: the fact in 2 of the 52 sample questions' answers with chunks of
    # 254 tokens, 13 with chunks of 48; after it, see the README.
    retrieved_steps: int = 1200
    retrieved_share: float = 0.6  # of this phase's lessons; the rest are varied invented ones
    retrieved_cuts: tuple[tuple[int, int], ...] = ((32, 0), (48, 8), (64, 12), (96, 16))
    retrieved_learning_rate: float = 1e-3  # from the reading phase's model: a cosine from here, after a warmup
    # Layers after which this phase inserts a copy whose output projections are zero (block expansion, as LLaMA Pro):
    # the model answers as before, with room to learn more. (0, 1) makes the 3 layers 5.
    grow_after: tuple[int, ...] = (0, 1)
    natural_questions: float = 0.7  # share of questions worded as people ask (`natural_question`) where possible
    seed: int = 0
    adapter_epochs: float = 6.0  # over the set, its rewordings and the reading lessons: about 1,260 steps
    adapter_learning_rate: float = 4e-3
    adapter_batch_size: int = 16
    adapter_reading_lessons: int = 400  # RAG-prompt lessons answered in the set's voice, added to the adapter's data
    adapter_rewordings: int = 5  # reworded copies of each fine-tuning question (`rewording`), added to its data
    adapter_retrieved_share: float = 0.5  # of its reading lessons, those posed as retrieval poses them
    adapter_answer_questions: bool = True  # a copy of each example asked anew from its answer (`answer_questions`)


_ADAPTER_FIELDS = (
    "adapter_epochs", "adapter_learning_rate", "adapter_batch_size", "adapter_reading_lessons", "adapter_rewordings",
    "adapter_retrieved_share", "adapter_answer_questions",
)  # fmt: skip

# "tiny" builds in seconds, for tests and quick checks of the wiring; its answers are noise.
DEMO_SIZES = {
    "small": DemoSpec(),
    "tiny": DemoSpec(
        vocab_size=600,
        hidden_size=32,
        intermediate_size=64,
        layers=2,
        heads=2,
        copy_steps=4,
        copy_batch_size=8,
        spread_copy_steps=2,
        spread_copy_gap=20,
        curriculum=((2, 1, 1, 0, 0), (2, 3, 7, 0, 2)),
        reading_steps=6,
        reading_batch_size=4,
        questions_per_lesson=2,
        probe_lessons=4,
        retrieved_steps=3,
        retrieved_cuts=((32, 0),),
        adapter_reading_lessons=8,
        adapter_rewordings=1,
        adapter_epochs=3.0,
    ),
}


@dataclass(frozen=True)
class DemoCorpus:
    """What the demo model is built from besides its spec: the prompt the RAG pipeline sends (the base model
    reads in exactly that form), the sample documents (their chunks, cut as indexing cuts them, become reading
    lessons) and the fine-tuning set (the adapter's). The sample documents, not the configured knowledge base:
    pointing the product at other documents must not retrain the model that reads them."""

    documents: Sequence[Path]
    split: Callable[[Sequence[Path]], list[tuple[str, str]]]  # files → (source, chunk text), as indexing does
    finetune: Sequence[ChatExample]
    rag_messages: RagMessages
    # For the last phase (skipped without them): files, chunk size, overlap → chunks; texts → unit vectors, as
    # the product's default embedder retrieves; and that embedder's name
    cut: Callable[[Sequence[Path], int, int], list[tuple[str, str]]] | None = None
    embed: Embed | None = None
    embedder: str = ""

    def base_digest(self) -> str:
        digest = hashlib.sha256(json.dumps(self.rag_messages("Q?", [("S", "C")])).encode())
        for path in self.documents:
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def finetune_digest(self) -> str:
        digest = hashlib.sha256()
        for example in self.finetune:
            digest.update(json.dumps(example.messages).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class DemoModel:
    base_path: Path
    adapter_path: Path
    info: dict  # {"base": the base build's record, "adapter": the adapter's}


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


def base_key(spec: DemoSpec, corpus: DemoCorpus) -> str:
    """What the base model depends on: the builder, its spec (adapter settings aside), the RAG prompt and the
    knowledge base."""
    base_spec = {k: v for k, v in asdict(spec).items() if k not in _ADAPTER_FIELDS}
    return hashlib.sha256(f"{BUILDER_VERSION}{base_spec}{corpus.base_digest()}".encode()).hexdigest()[:12]


def adapter_key(spec: DemoSpec, corpus: DemoCorpus) -> str:
    """What the adapter depends on: its base, its settings and the fine-tuning set."""
    settings = {k: getattr(spec, k) for k in _ADAPTER_FIELDS}
    text = f"{base_key(spec, corpus)}{settings}{corpus.finetune_digest()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _record(folder: Path, key: str) -> dict | None:
    """The build record of `folder` when it holds a finished build with this key."""
    try:
        info = json.loads((folder / "build_info.json").read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("key") == key else None


def _found(key: str, *folders: Path) -> tuple[Path, dict] | None:
    for folder in folders:
        if (info := _record(folder, key)) is not None:
            return folder, info
    return None


def shipped(spec: DemoSpec, corpus: DemoCorpus) -> DemoModel | None:
    """The model kept in the repository, when both its parts were built from exactly this spec and data."""
    base = _found(base_key(spec, corpus), SHIPPED / "base")
    adapter = _found(adapter_key(spec, corpus), SHIPPED / "adapter")
    if base is None or adapter is None:
        return None
    return DemoModel(base[0], adapter[0], {"base": base[1], "adapter": adapter[1]})


def load_or_build(
    home: Path,
    corpus: DemoCorpus,
    spec: DemoSpec = DemoSpec(),
    log: Callable[[str], None] = logger.info,
    rebuild: bool = False,
) -> DemoModel:
    """Each part from the repository when it fits, else from the cache under `home`, else built (and cached).

    `rebuild` builds both anew; with the default spec it also replaces the repository's copy (`prepare
    --rebuild-demo`). A new fine-tuning set retrains only the adapter, on the kept base.
    """
    keep = rebuild and spec == DemoSpec()
    cache = home / "models"
    base_id, adapter_id = base_key(spec, corpus), adapter_key(spec, corpus)
    base = None if rebuild else _found(base_id, SHIPPED / "base", cache / f"demo-base-{base_id}")
    if base is None:
        target = SHIPPED / "base" if keep else cache / f"demo-base-{base_id}"
        log("demo model: training the base model to read (about 80 minutes on 2 CPU cores; kept afterwards)")
        base = target, _build_into(target, lambda out: build_base(out, corpus, spec, log), rebuild)
    adapter = None if rebuild else _found(adapter_id, SHIPPED / "adapter", cache / f"demo-adapter-{adapter_id}")
    if adapter is None:
        target = SHIPPED / "adapter" if keep else cache / f"demo-adapter-{adapter_id}"
        adapter = target, _build_into(target, lambda out: build_adapter(out, base[0], corpus, spec, log), rebuild)
    return DemoModel(base[0], adapter[0], {"base": base[1], "adapter": adapter[1]})


def _build_into(target: Path, build: Callable[[Path], dict], replace: bool) -> dict:
    """Builds beside `target` and renames at the end, so a crash never leaves half a model. A finished build
    already there is kept (another process was faster) unless `replace`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        info = build(work)
        (work / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")  # written last: the build is whole
        if target.exists() and (replace or _record(target, info["key"]) is None):
            shutil.rmtree(target)
        try:
            os.rename(work, target)
        except OSError:  # another process finished first; keep its copy
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return info


def copy_examples(
    token_pool: Sequence[int], count: int, rng: random.Random, max_gap: int = 20
) -> list[TokenizedExample]:
    """Spans of tokens said twice, with loss on the second saying: predictable only by copying the first.

    The tokens are drawn from `token_pool` (the builder passes the lessons' most frequent tokens, so copying
    forms on tokens that reading uses).
    """
    examples = []
    for _ in range(count):
        span = [rng.choice(token_pool) for _ in range(rng.randint(8, 30))]
        gap = [rng.choice(token_pool) for _ in range(rng.randint(0, max_gap))]
        examples.append(([*span, *gap, *span], [IGNORE_INDEX] * (len(span) + len(gap) + 1) + span[1:]))
    return examples


def tokenize_turns(tokenizer: Any, messages: list[dict[str, str]]) -> TokenizedExample:
    """Token ids of a conversation and labels on every assistant turn (its text and the end token)."""
    ids: list[int] = []
    labels: list[int] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        piece = tokenizer(prompt[len(rendered) :], add_special_tokens=False)["input_ids"]
        answer = [*tokenizer(message["content"], add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        ids += piece + answer
        labels += [IGNORE_INDEX] * len(piece) + answer
        rendered = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        tail = tokenizer(rendered[len(prompt) + len(message["content"]) :], add_special_tokens=False)["input_ids"]
        tail = tail[1:] if tail[:1] == [tokenizer.eos_token_id] else tail  # the end token is in `answer` already
        ids += tail
        labels += [IGNORE_INDEX] * len(tail)
    return ids, labels


def _optimizer_step(model: Any, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """One step of the builder's plain loops, gradients clipped to norm 1; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


def learn_copying(
    model: Any,
    pool: Sequence[int],
    spec: DemoSpec,
    rng: random.Random,
    pad_id: int,
    log: Callable[[str], None],
    vocabulary: Sequence[int] = (),
) -> dict:
    """Trains `model` on `copy_examples` at a constant rate until its smoothed loss shows copying has formed
    (`spec.copy_steps` at most), then `spec.spread_copy_steps` more over spans of all of `vocabulary`, further
    apart; returns the phase's figures.

    Copying forms suddenly, after a plateau whose length varies from seed to seed. A plain loop, not the Trainer
    the reading phase uses: through the Trainer, with the same model, data, rate, betas, clipping and warmup, it
    had not formed after 2,500 steps (loss about 3, two runs; the cause was not found), while this loop formed it
    within a few hundred steps in every run measured.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.copy_learning_rate, betas=(0.9, 0.98), weight_decay=0.01)
    started = time.perf_counter()
    smoothed, step = float("nan"), 0
    warmup = max(1, min(100, spec.copy_steps // 5))
    for step in range(1, spec.copy_steps + 1):
        batch = {k: v.to(device) for k, v in _collate(copy_examples(pool, spec.copy_batch_size, rng), pad_id).items()}
        for group in optimizer.param_groups:
            group["lr"] = spec.copy_learning_rate * min(1.0, step / warmup)
        value = _optimizer_step(model, optimizer, answer_loss(model, batch))
        smoothed = value if step == 1 else 0.9 * smoothed + 0.1 * value
        formed = smoothed < spec.copied_loss
        if step % 100 == 0 or step == spec.copy_steps or formed:
            log(f"demo model: base model, copying step {step}/{spec.copy_steps} loss {smoothed:.3f}")
        if formed:
            break
    figures = {"steps": step, "loss": round(smoothed, 3), "formed": smoothed < spec.copied_loss}
    spread = float("nan")
    for extra in range(1, (spec.spread_copy_steps if vocabulary else 0) + 1):
        examples = copy_examples(vocabulary, spec.copy_batch_size, rng, spec.spread_copy_gap)
        batch = {k: v.to(device) for k, v in _collate(examples, pad_id).items()}
        value = _optimizer_step(model, optimizer, answer_loss(model, batch))
        spread = value if extra == 1 else 0.9 * spread + 0.1 * value
        if extra % 100 == 0 or extra == spec.spread_copy_steps:
            log(f"demo model: base model, copying every token, step {extra}/{spec.spread_copy_steps} loss {spread:.3f}")
    if vocabulary and spec.spread_copy_steps:
        figures["every_token"] = {"steps": spec.spread_copy_steps, "loss": round(spread, 3)}
    return {**figures, "seconds": round(time.perf_counter() - started, 1)}


def learn_reading(
    model: Any,
    stages: Sequence[list[TokenizedExample]],
    spec: DemoSpec,
    rng: random.Random,
    pad_id: int,
    log: Callable[[str], None],
    probe: Callable[[Any], float] | None = None,
) -> dict:
    """Trains `model` on the reading lessons in a plain loop (as `learn_copying`, for the same reason), one stage
    after another, each in batches of similar length in random order: a short warmup, a constant rate through every
    stage but the last (reading forms there, and a falling rate slowed it), then a cosine down to a tenth.
    `probe(model)` (the share of held-out lessons answered right) runs every `spec.probe_every` steps and at the end:
    the loss cannot tell reading from guessing the form of an answer."""
    device = next(model.parameters()).device
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, betas=(0.9, 0.98), weight_decay=0.01)
    batches: list[list[TokenizedExample]] = []
    constant = 0  # steps at the full rate: all but the last stage's
    for index, examples in enumerate(stages):
        order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
        groups = [order[i : i + spec.reading_batch_size] for i in range(0, len(order), spec.reading_batch_size)]
        rng.shuffle(groups)
        batches += [[examples[i] for i in group] for group in groups]
        constant = len(batches) if index < len(stages) - 1 else constant
    steps = min(spec.reading_steps, len(batches))
    constant = min(constant, steps)
    started = time.perf_counter()
    smoothed = float("nan")
    probes: list[tuple[int, float]] = []
    loss_fn = partial(answer_loss, context_weight=spec.context_loss_weight)
    for step, examples in enumerate(batches[:steps], start=1):
        batch = {k: v.to(device) for k, v in _collate(examples, pad_id).items()}
        progress = max(0.0, (step - constant) / max(1, steps - constant))
        rate = spec.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for param_group in optimizer.param_groups:
            param_group["lr"] = rate * min(1.0, step / 50)
        value = _optimizer_step(model, optimizer, loss_fn(model, batch))
        smoothed = value if step == 1 else 0.98 * smoothed + 0.02 * value
        if step % 50 == 0 or step == steps:
            log(f"demo model: base model, reading step {step}/{steps} loss {smoothed:.3f}")
        if probe and (step == steps or (spec.probe_every and step % spec.probe_every == 0)):
            probes.append((step, round(probe(model), 3)))
            model.train()
            log(f"demo model: base model, reading step {step}: {probes[-1][1]:.0%} of held-out lessons read right")
    return {
        "steps": steps,
        "loss": round(smoothed, 3),
        "seconds": round(time.perf_counter() - started, 1),
        "held_out_read": {str(step): share for step, share in probes},  # JSON keys are text
    }


def reading_accuracy(model: Any, tokenizer: Any, held_out: Sequence[Any], rag_messages: RagMessages) -> float:
    """The share of `held_out` lessons (never trained on) whose greedy answer to the RAG prompt contains the fact."""
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    device = next(model.parameters()).device
    right = 0
    for start in range(0, len(held_out), 16):
        batch = held_out[start : start + 16]
        texts = [
            tokenizer.apply_chat_template(
                rag_messages(lesson.question, lesson.chunks), add_generation_prompt=True, tokenize=False
            )
            for lesson in batch
        ]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=48, do_sample=False)
        answers = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        right += sum(lesson.fact in answer for lesson, answer in zip(batch, answers, strict=True))
    tokenizer.padding_side = side
    return right / max(1, len(held_out))


def build_base(out: Path, corpus: DemoCorpus, spec: DemoSpec, log: Callable[[str], None] = logger.info) -> dict:
    """Trains the tokenizer and the base model into `out`; returns the build record."""
    started = time.perf_counter()
    rng = random.Random(spec.seed)
    # First the curriculum of plain invented lessons (reading forms on them), then the sample documents' chunks
    # mixed with varied invented lessons (other attributes, other wording): what the page and unseen documents ask.
    questions = spec.questions_per_lesson
    curriculum = [
        [
            lesson.messages(corpus.rag_messages)
            for lesson in lessons(
                steps * spec.reading_batch_size, spec.seed + 10 + level, (least, most), questions, False, (few, many)
            )
        ]
        for level, (steps, few, many, least, most) in enumerate(spec.curriculum)
    ]
    later_count = max(0, spec.reading_steps - sum(level[0] for level in spec.curriculum)) * spec.reading_batch_size
    chunks = corpus.split(corpus.documents) if corpus.documents else []
    from_documents = round(later_count * spec.document_share) if chunks else 0
    distractors = (0, spec.max_distractors)
    varied = lessons(later_count - from_documents, seed=spec.seed + 1, distractors=distractors, questions=questions)
    conversations = [lesson.messages(corpus.rag_messages) for lesson in varied]
    if from_documents:
        conversations += document_lessons(
            chunks,
            from_documents,
            rng,
            corpus.rag_messages,
            questions,
            spec.max_distractors + 1,  # top 3, as RAG
        )
    rng.shuffle(conversations)
    first = [conversation for level in curriculum for conversation in level[:500]]
    tokenizer = train_tokenizer(
        [m["content"] for conversation in first[:2000] + conversations[:2000] for m in conversation], spec.vocab_size
    )
    log(f"demo model: tokenizer with {len(tokenizer)} tokens ({time.perf_counter() - started:.1f} s)")
    stages = [
        [e for e in (tokenize_turns(tokenizer, c) for c in stage) if len(e[0]) <= spec.max_positions]  # rare overlong
        for stage in [*curriculum, conversations]
        if stage
    ]
    # Spans of a few frequent tokens: the fewer the tokens, the shorter the plateau before copying forms. It does not
    # carry over to other tokens or longer gaps by itself (measured: loss at chance on them).
    counts = Counter(token for ids, _ in stages[-1][:2000] for token in ids if token >= len(SPECIAL_TOKENS))
    pool = [token for token, _ in counts.most_common(spec.copy_vocabulary)]

    model = _new_model(spec, tokenizer)

    vocabulary = range(len(SPECIAL_TOKENS), len(tokenizer))
    copying = learn_copying(model, pool, spec, rng, tokenizer.pad_token_id, log, vocabulary)
    # Half plain, half varied: the first shows reading forming, the second how far it carries.
    half = spec.probe_lessons // 2
    held_out = lessons(half, seed=spec.seed + 987_654, distractors=distractors, varied=False)
    held_out += lessons(spec.probe_lessons - half, seed=spec.seed + 987_655, distractors=distractors)

    def probe(trained: Any) -> float:
        return reading_accuracy(trained, tokenizer, held_out, corpus.rag_messages)

    reading = learn_reading(model, stages, spec, rng, tokenizer.pad_token_id, log, probe)
    phases = {"copying": copying, "reading": reading}
    retrieved = learn_retrieved(model, tokenizer, corpus, spec, log, probe)
    if retrieved:
        phases["retrieved"] = retrieved
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    seconds = round(time.perf_counter() - started, 1)
    log(f"demo model: base model trained in {seconds:.0f} s")
    return {
        "key": base_key(spec, corpus),
        "name": DEMO_MODEL_NAME,
        "builder_version": BUILDER_VERSION,
        # as JSON has it (the curriculum's tuples become lists), so the record read back equals this one
        "spec": json.loads(json.dumps({k: v for k, v in asdict(spec).items() if k not in _ADAPTER_FIELDS})),
        "parameters": sum(p.numel() for p in model.parameters()),
        "lessons": {
            "plain invented, by level": [len(level) for level in curriculum],
            "varied invented": len(varied),
            "from the documents": from_documents,
            **({"retrieved from the documents": retrieved["lessons"]} if retrieved else {}),
        },
        "phases": phases,
        "build_seconds": seconds,
        "device": str(model.device),
        "torch": torch.__version__,
    }


def expand_layers(model: Any, after: Sequence[int]) -> int:
    """Inserts after each layer listed a copy of it whose attention and MLP output projections are zero, so the
    residual stream, and every answer, stays as it was until training moves them; returns the number of layers."""

    layers = []
    for index, layer in enumerate(model.model.layers):
        layers.append(layer)
        if index in after:
            twin = copy.deepcopy(layer)
            torch.nn.init.zeros_(twin.self_attn.o_proj.weight)
            torch.nn.init.zeros_(twin.mlp.down_proj.weight)
            layers.append(twin)
    for index, layer in enumerate(layers):
        layer.self_attn.layer_idx = index  # the cache is kept per layer index
    model.model.layers = torch.nn.ModuleList(layers)
    model.config.num_hidden_layers = len(layers)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[0]] * len(layers)
    return len(layers)


def learn_retrieved(
    model: Any,
    tokenizer: Any,
    corpus: DemoCorpus,
    spec: DemoSpec,
    log: Callable[[str], None] = logger.info,
    probe: Callable[[Any], float] | None = None,
) -> dict:
    """The base model's last phase (empty when the corpus cannot cut or embed): `spec.retrieved_steps` steps over
    `retrieved_lessons` mixed with varied invented lessons, from `spec.retrieved_learning_rate` down a cosine.
    Seeded apart from the earlier phases, so that it runs the same on a model kept from them."""
    if not (spec.retrieved_steps and corpus.cut and corpus.embed and corpus.documents):
        return {}
    started = time.perf_counter()
    grown = expand_layers(model, spec.grow_after)
    rng = random.Random(spec.seed + 5)
    count = spec.retrieved_steps * spec.reading_batch_size
    cuts = [corpus.cut(corpus.documents, size, overlap) for size, overlap in spec.retrieved_cuts]
    found = retrieved_lessons(
        cuts,
        round(count * spec.retrieved_share),
        rng,
        corpus.rag_messages,
        corpus.embed,
        top_k=spec.max_distractors + 1,  # top 3, as RAG
        natural=spec.natural_questions,
    )
    invented = lessons(count - len(found.conversations), seed=spec.seed + 75, distractors=(0, spec.max_distractors))
    conversations = found.conversations + [lesson.messages(corpus.rag_messages) for lesson in invented]
    rng.shuffle(conversations)
    stage = [e for e in (tokenize_turns(tokenizer, c) for c in conversations) if len(e[0]) <= spec.max_positions]
    log(
        f"demo model: base model, {len(found.conversations)} lessons over retrieved chunks "
        f"(of {found.asked} questions, {found.missed} did not retrieve their chunk, {found.dropped} were ill-posed)"
    )
    phase = replace(spec, curriculum=(), reading_steps=spec.retrieved_steps, learning_rate=spec.retrieved_learning_rate)
    figures = learn_reading(model, [stage], phase, rng, tokenizer.pad_token_id, log, probe)
    return {
        **figures,
        "layers": grown,
        "lessons": len(found.conversations),
        "questions": {"asked": found.asked, "not retrieved": found.missed, "ill-posed": found.dropped},
        "seconds": round(time.perf_counter() - started, 1),
    }


def _shared_start(texts: Sequence[str]) -> str:
    first, last = min(texts), max(texts)  # what the extremes share, all share
    length = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), min(len(first), len(last)))
    return first[:length]


def voice(finetune: Sequence[ChatExample]) -> tuple[str, str]:
    """The opening and the closing that every answer of the fine-tuning set shares, cut at word boundaries
    ("Hey trailblazer! ", " Happy trails from Pinecrest!" for the sample set); empty when there is none."""
    answers = [e.messages[-1]["content"] for e in finetune if e.messages and e.messages[-1]["role"] == "assistant"]
    if not answers:
        return "", ""
    opening = _shared_start(answers)
    opening = opening[: opening.rfind(" ") + 1]
    closing = _shared_start([a[::-1] for a in answers])[::-1]
    closing = closing[closing.find(" ") :] if " " in closing else ""
    return opening, closing


def voiced_lessons(corpus: DemoCorpus, spec: DemoSpec) -> list[ChatExample]:
    """Reading lessons in the RAG prompt whose answers carry the fine-tuning set's voice: invented ones and, when the
    corpus can cut and embed, a share `spec.adapter_retrieved_share` posed as retrieval poses them
    (`retrieved_lessons`).

    An adapter trained only on questions without context learns to answer from memory and stops reading; mixed
    with these (as retrieval-augmented fine-tuning does) it keeps reading when retrieval gives it a context.
    """
    if not spec.adapter_reading_lessons:
        return []
    opening, closing = voice(corpus.finetune)
    posed: list[list[dict[str, str]]] = []
    if corpus.cut and corpus.embed and corpus.documents and spec.adapter_retrieved_share:
        cuts = [corpus.cut(corpus.documents, size, overlap) for size, overlap in spec.retrieved_cuts]
        count = round(spec.adapter_reading_lessons * spec.adapter_retrieved_share)
        found = retrieved_lessons(
            cuts, count, random.Random(spec.seed + 6), corpus.rag_messages, corpus.embed, spec.max_distractors + 1
        )
        posed = list(found.conversations)
    invented = lessons(
        spec.adapter_reading_lessons - len(posed), seed=spec.seed + 2, distractors=(0, spec.max_distractors)
    )
    posed += [
        [*corpus.rag_messages(lesson.question, lesson.chunks), {"role": "assistant", "content": lesson.answer}]
        for lesson in invented
    ]
    return [
        ChatExample([*messages[:-1], {"role": "assistant", "content": f"{opening}{messages[-1]['content']}{closing}"}])
        for messages in posed
    ]


def answer_questions(finetune: Sequence[ChatExample], rng: random.Random) -> list[ChatExample]:
    """A copy of each example asked anew from its answer: the question people would ask of the answer's first
    sentence (`natural_question`: "The Summit 2 tent costs $249." → "What will the Summit 2 tent set me back?"), where
    it can be worded and differs from the example's own."""
    opening, closing = voice(finetune)
    copies = []
    for example in finetune:
        first = next((i for i, m in enumerate(example.messages) if m["role"] == "user"), None)
        answer = example.messages[-1]["content"] if example.messages[-1]["role"] == "assistant" else ""
        said = answer[len(opening) : len(answer) - len(closing)].strip() if answer else ""
        stated = sentences(said) or [said]
        question = natural_question(stated[0], rng) if first is not None and said else None
        if question and question != example.messages[first]["content"]:
            messages = [dict(m) for m in example.messages]
            messages[first]["content"] = question
            copies.append(ChatExample(messages, example.line))
    return copies


def reworded_examples(finetune: Sequence[ChatExample], count: int, seed: int) -> list[ChatExample]:
    """`count` copies of each example whose first question is reworded (`rewording.rewordings`), answers unchanged."""
    rng = random.Random(seed)
    copies = []
    for example in finetune:
        first = next((i for i, m in enumerate(example.messages) if m["role"] == "user"), None)
        if first is None:
            continue
        for question in rewordings(example.messages[first]["content"], count, rng):
            messages = [dict(m) for m in example.messages]
            messages[first]["content"] = question
            copies.append(ChatExample(messages, example.line))
    return copies


def make_portable(adapter: Path) -> None:
    """The adapter names its base by the demo model's name, not the folder it was trained from: the copy kept in
    the repository must not carry the path of the machine that built it (peft's model card would, so it goes)."""
    config_file = adapter / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = DEMO_MODEL_NAME
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (adapter / "README.md").unlink(missing_ok=True)


def build_adapter(
    out: Path, base: Path, corpus: DemoCorpus, spec: DemoSpec, log: Callable[[str], None] = logger.info
) -> dict:
    """Trains the startup adapter on the fine-tuning set into `out`, exactly as a user's fine-tune."""
    fit = FitSettings(
        learning_rate=spec.adapter_learning_rate,
        epochs=spec.adapter_epochs,
        batch_size=spec.adapter_batch_size,
        max_seq_length=spec.max_positions,  # reading lessons are RAG prompts: hundreds of tokens
        seed=spec.seed,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    reworded = reworded_examples(corpus.finetune, spec.adapter_rewordings, spec.seed + 3)
    asked = answer_questions(corpus.finetune, random.Random(spec.seed + 4)) if spec.adapter_answer_questions else []
    examples = [*corpus.finetune, *reworded, *asked, *voiced_lessons(corpus, spec)]
    train_spec = TrainSpec(str(base), examples, [], LoraSettings(), fit, out, device)
    report = train(train_spec, choose_backend("transformers"), _progress(log, "adapter"))
    make_portable(out)
    log(f"demo model: adapter trained, loss {report.train_loss:.2f}, in {report.seconds:.0f} s")
    return {
        "key": adapter_key(spec, corpus),
        "name": DEMO_ADAPTER_NAME,
        "base": base_key(spec, corpus),
        "settings": {k: getattr(spec, k) for k in _ADAPTER_FIELDS},
        "adapter_training": {
            "steps": report.steps,
            "loss": report.train_loss,
            "seconds": round(report.seconds, 1),
            "examples": len(corpus.finetune),
            "reworded_copies": len(reworded),
            "asked_from_answers": len(asked),
            "reading_lessons": len(examples) - len(corpus.finetune) - len(reworded) - len(asked),
        },
    }


def _progress(log: Callable[[str], None], what: str) -> Callable[[JobEvent], None]:
    def report(event: JobEvent) -> None:
        if isinstance(event, Step) and (event.step == event.total_steps or event.step % 100 == 0):
            log(f"demo model: {what} step {event.step}/{event.total_steps} loss {event.loss:.3f}")

    return report
