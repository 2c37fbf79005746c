"""The prompt every RAG request sends. The demo model is trained on exactly this shape."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from haystack import Document
from haystack.components.builders import ChatPromptBuilder
from haystack.dataclasses import ChatMessage

# The question comes first so that, reading the context, a model already knows what to look for.
RAG_USER = (
    "Question: {{ question }}\n\nContext:\n"
    "{% for doc in documents %}[{{ loop.index }}] {{ doc.meta.file_path }}: {{ doc.content }}\n{% endfor %}"
    "\nAnswer the question from the context."
)
RAG_TEMPLATE = [ChatMessage.from_user(RAG_USER)]


def rag_prompt_builder() -> ChatPromptBuilder:
    return ChatPromptBuilder(template=RAG_TEMPLATE, required_variables=["question", "documents"])


def to_dicts(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role.value, "content": m.text or ""} for m in messages]


@cache
def _shared_builder() -> ChatPromptBuilder:
    return rag_prompt_builder()


def rag_messages(question: str, chunks: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    """The RAG prompt for `question` over (source, text) chunks, rendered by the pipeline's builder."""
    documents = [Document(content=text, meta={"file_path": source}) for source, text in chunks]
    prompt = _shared_builder().run(question=question, documents=documents)["prompt"]
    return to_dicts(prompt)


def plain_messages(question: str) -> list[dict[str, str]]:
    """The prompt without retrieval: what the fine-tuned model gets."""
    return [{"role": "user", "content": question}]
