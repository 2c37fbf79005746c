"""Uploaded files → chunks in the store, with one plain-words report per file.

Every file is read, checked and converted on its own, so one bad file costs only its own report. The good files'
chunks are embedded in one batch and written together; a file's old chunks are dropped only after its new ones
are in, so a failure never loses what was indexed before.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import time
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from haystack import Document
from haystack.components.converters import CSVToDocument, DOCXToDocument, HTMLToDocument, PyPDFToDocument
from haystack.dataclasses import ByteStream
from haystack.document_stores.types import DuplicatePolicy
from haystack_integrations.components.embedders.sentence_transformers import (
    SentenceTransformersDocumentEmbedder,
)

from pipelines.embedder import EmbedderInfo
from pipelines.fast_store import FastDocumentStore
from pipelines.indexing import ChunkSettings, document_embedder
from pipelines.splitter import EmbedderTokenSplitter

logger = logging.getLogger(__name__)

KINDS = {
    ".txt": "text",
    ".md": "text",
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
    ".json": "json",
}
_MB = 1024 * 1024
# Leading bytes of formats people upload by mistake, to say what a file really is.
_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (e.g. DOCX or XLSX)"),
    (b"MZ", "a Windows program"),
    (b"\x7fELF", "a Linux program"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
)
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),  # before UTF-16, whose little-endian BOM is its prefix
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


Progress = Callable[[int, int, str], None]  # (done, total, stage)
EMBED_SLICE = 256  # chunks per progress report while embedding: 8 of the embedder's batches


@dataclass(frozen=True)
class IngestLimits:
    max_bytes: int = 50 * _MB  # one file as uploaded
    max_unzipped_bytes: int = 200 * _MB  # one DOCX once unpacked
    max_files: int = 5000  # files in one call


@dataclass
class FileReport:
    file: str
    status: str  # "indexed" | "error" | "skipped" (its content is indexed already)
    chunks: int = 0
    characters: int = 0
    pages: int | None = None
    error: str = ""


class IngestError(Exception):
    """A problem with one file, said in words a user can act on."""


@dataclass
class _Converted:
    report: FileReport
    text: str
    content_hash: str


def safe_name(path: Path | str) -> str:
    """The base name only, whatever separators the uploader's system used; this is the chunks' `file_path`."""
    raw = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", raw) if ch.isprintable()).strip()
    if name in {"", ".", ".."}:
        raise IngestError(f"{str(path)!r} has no file name")
    return name[:255]


def ingest_files(
    paths: Sequence[Path],
    store: FastDocumentStore,
    embedder: EmbedderInfo,
    chunks: ChunkSettings,
    limits: IngestLimits = IngestLimits(),
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
) -> list[FileReport]:
    """Indexes `paths` into `store`; one report per path, in order. `progress(done, total, stage)` follows the
    reading (stage "reading", counting files) and then the embedding (stage "embedding", counting chunks).

    `timings`, when given, gets the seconds spent per phase (for benchmarks): convert_s (reading, converting and
    the repeat check), split_s, embed_s, write_s.
    """
    timings = {} if timings is None else timings
    reports: list[FileReport] = []
    converted: list[_Converted] = []
    total = len(paths)
    with _timed(timings, "convert_s"):
        for done, path in enumerate(paths, start=1):
            item = _convert_one(path, limits, too_many=done > limits.max_files)
            if isinstance(item, _Converted):
                converted.append(item)
                item = item.report
            reports.append(item)
            if progress is not None:
                progress(done, total, "reading")
        pending = _new_content(converted, store)
    if pending:
        _index(pending, store, embedder, chunks, timings, progress)
    return reports


@contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start


def _convert_one(path: Path, limits: IngestLimits, too_many: bool) -> FileReport | _Converted:
    try:
        name = safe_name(path)
    except IngestError as error:
        return FileReport(file=str(path)[-255:], status="error", error=str(error))
    report = FileReport(file=name, status="error")
    if too_many:
        report.error = f"{name} was not read: the upload has more than {limits.max_files} files"
        return report
    try:
        text, content_hash, report.pages = _read_and_convert(Path(path), name, limits)
    except IngestError as error:
        report.error = f"{name} {error}"
        return report
    except Exception as error:  # a converter's own failure; the message still names the file
        logger.warning("converting %s failed", name, exc_info=True)
        report.error = f"{name} could not be read: {type(error).__name__}: {error}"
        return report
    report.characters = len(text)
    return _Converted(report, text, content_hash)


def _read_and_convert(path: Path, name: str, limits: IngestLimits) -> tuple[str, str, int | None]:
    kind = KINDS.get(Path(name).suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(KINDS))
        raise IngestError(f"has an unsupported file type {Path(name).suffix or '(none)'!r}; supported: {supported}")
    data = _read_bytes(path, limits)
    content_hash = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        text, pages = _pdf_text(data)
        return text, content_hash, pages
    if kind == "docx":
        return _docx_text(data, limits), content_hash, None
    text = _decode(data, Path(name).suffix.lower())
    if kind == "html":
        text = _converted_text(HTMLToDocument(encoding="utf-8"), text.encode("utf-8"), "no readable text")
    elif kind == "csv":
        text = _converted_text(CSVToDocument(encoding="utf-8"), text.encode("utf-8"), "no rows")
    elif kind == "json":
        text = _json_text(text)
    if not text.strip():
        raise IngestError("contains no text")
    return text, content_hash, None


def _read_bytes(path: Path, limits: IngestLimits) -> bytes:
    try:
        info = os.stat(path)
    except OSError as error:
        raise IngestError(f"could not be opened: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):  # a device or pipe could block or never end
        raise IngestError("is not a regular file")
    if info.st_size > limits.max_bytes:
        raise IngestError(f"is {info.st_size / _MB:.1f} MB, over the {limits.max_bytes / _MB:g} MB limit")
    with open(path, "rb") as handle:
        data = handle.read(limits.max_bytes + 1)  # the file may have grown since stat
    if len(data) > limits.max_bytes:
        raise IngestError(f"is over the {limits.max_bytes / _MB:g} MB limit")
    if not data:
        raise IngestError("is empty")
    return data


def _decode(data: bytes, suffix: str) -> str:
    """Text in any common encoding: a BOM says which; else UTF-8; else Windows-1252 (a superset of Latin-1)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                raise IngestError(f"starts with a {encoding.upper()} marker but is not valid {encoding}") from None
    for signature, what in _SIGNATURES:
        if data.startswith(signature):
            raise IngestError(f"looks like {what}: its content does not match the {suffix} extension")
    if b"\x00" in data:
        encoding = _utf16_without_bom(data)
        if encoding is None:
            raise IngestError(f"contains binary data (NUL bytes), not text: its content does not match {suffix}")
        text = data.decode(encoding, errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
                text = data.decode("latin-1")
    sample = text[:65536]
    controls = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    if controls > len(sample) * 0.05:
        raise IngestError(f"contains binary data, not text: its content does not match {suffix}")
    return text


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 without a byte order mark: mostly-ASCII text has a NUL in every other byte."""
    even, odd = data[0::2], data[1::2]
    if len(data) % 2 == 0 and even.count(0) == 0 and odd.count(0) > len(odd) * 0.4:
        return "utf-16-le"
    if len(data) % 2 == 0 and odd.count(0) == 0 and even.count(0) > len(even) * 0.4:
        return "utf-16-be"
    return None


def _pdf_text(data: bytes) -> tuple[str, int]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    if b"%PDF-" not in data[:1024]:
        raise IngestError("is not a PDF: its content does not match the .pdf extension")
    # Opened here first because the converter logs and skips a bad PDF without saying why.
    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
        pages = 0 if encrypted else len(reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise IngestError(f"is a damaged PDF that could not be read ({error})") from None
    if encrypted:
        raise IngestError("is a password-protected (encrypted) PDF; remove the password and upload it again")
    text = _converted_text(PyPDFToDocument(), data, "no pages that could be read")
    if not text.replace("\f", "").strip():
        raise IngestError(f"has {pages} page(s) but no extractable text (a scan? run OCR first)")
    return text, pages


def _docx_text(data: bytes, limits: IngestLimits) -> str:
    if not data.startswith(b"PK\x03\x04"):
        raise IngestError("is not a DOCX: its content does not match the .docx extension")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            # zipfile never inflates a member past its declared size, so the declared total bounds the work.
            unpacked = sum(member.file_size for member in members)
            if unpacked > limits.max_unzipped_bytes:
                raise IngestError(
                    f"unpacks to {unpacked / _MB:.0f} MB, over the {limits.max_unzipped_bytes / _MB:g} MB limit "
                    "(a zip bomb?)"
                )
            if "word/document.xml" not in archive.namelist():
                raise IngestError("is a zip archive but not a Word document")
    except zipfile.BadZipFile as error:
        raise IngestError(f"is a damaged DOCX ({error})") from None
    return _converted_text(DOCXToDocument(), data, "no readable text")


def _converted_text(converter: Any, data: bytes, nothing: str) -> str:
    documents = converter.run(sources=[ByteStream(data=data)])["documents"]
    if not documents:
        raise IngestError(f"could not be converted: {nothing}")
    return "\n\n".join(doc.content or "" for doc in documents)


def _json_text(text: str) -> str:
    """`key.path: value` lines, so keys stay searchable next to their values."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise IngestError(f"is not valid JSON ({error.msg} at line {error.lineno})") from None
    lines: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{prefix}[{index}]")
        elif node is not None:
            lines.append(f"{prefix}: {node}" if prefix else str(node))

    walk(value, "")
    return "\n".join(lines)


def _new_content(converted: list[_Converted], store: FastDocumentStore) -> list[_Converted]:
    """Drops repeats: content seen earlier in this call or already in the store; a later same-name file wins."""
    by_hash: dict[str, _Converted] = {}
    by_name: dict[str, _Converted] = {}
    for item in converted:
        name = item.report.file
        if item.content_hash in by_hash:
            _skip(item, f"{name} has the same content as {by_hash[item.content_hash].report.file} in this upload")
            continue
        earlier = by_name.get(name)
        if earlier is not None:
            _skip(earlier, f"{name} was replaced by a later file of the same name in this upload")
            del by_hash[earlier.content_hash]
        by_hash[item.content_hash] = by_name[name] = item
    if not by_hash:
        return []
    # One pass over the store for all files (a filter scans every row).
    indexed = store.filter_documents(
        {"field": "meta.content_hash", "operator": "in", "value": sorted(by_hash)},
    )
    known = {doc.meta["content_hash"]: doc.meta.get("file_path", "") for doc in indexed}
    pending = []
    for content_hash, item in by_hash.items():
        if content_hash in known:
            _skip(item, f"{item.report.file} is already indexed (same content as {known[content_hash]})")
        else:
            pending.append(item)
    return pending


def _skip(item: _Converted, reason: str) -> None:
    item.report.status, item.report.error = "skipped", reason


@lru_cache(maxsize=4)
def _splitter(model: str, size: int, overlap: int) -> EmbedderTokenSplitter:
    splitter = EmbedderTokenSplitter(model, size, overlap)
    splitter.warm_up()
    return splitter


@lru_cache(maxsize=2)
def _embedder(embedder: EmbedderInfo) -> SentenceTransformersDocumentEmbedder:
    component = document_embedder(embedder)
    component.warm_up()  # loading the model once per process, not once per upload
    return component


def loaded_embedder(embedder: EmbedderInfo, chunks: ChunkSettings) -> SentenceTransformersDocumentEmbedder:
    """The tokenizer and embedding model `ingest_files` uses, loaded now (a first upload then starts at once)."""
    _splitter(embedder.model, chunks.size, chunks.overlap)
    return _embedder(embedder)


def _index(
    pending: list[_Converted],
    store: FastDocumentStore,
    embedder: EmbedderInfo,
    chunks: ChunkSettings,
    timings: dict[str, float],
    progress: Progress | None = None,
) -> None:
    with _timed(timings, "split_s"):
        batch, ready = _split(pending, _splitter(embedder.model, chunks.size, chunks.overlap))
    if not batch:
        return
    names = sorted({item.report.file for item, _ in ready})
    try:
        with _timed(timings, "embed_s"):
            embedded = _embed(_embedder(embedder), batch, progress)
        with _timed(timings, "write_s"):
            # Ids of the old versions are taken before the write, so the new chunks are never among them.
            old = store.filter_documents({"field": "meta.file_path", "operator": "in", "value": names})
            store.write_documents(embedded, policy=DuplicatePolicy.OVERWRITE)
    except Exception as error:  # the store is unchanged: its write validates the whole batch first
        logger.exception("indexing %d files failed", len(ready))
        for item, _ in ready:
            item.report.error = f"{item.report.file} could not be indexed: {type(error).__name__}: {error}"
        return
    with _timed(timings, "write_s"):
        store.delete_documents([doc.id for doc in old])
    for item, count in ready:
        item.report.status, item.report.chunks = "indexed", count


def _embed(
    component: SentenceTransformersDocumentEmbedder, batch: list[Document], progress: Progress | None
) -> list[Document]:
    """Embeds in slices of several model batches, so a long upload reports its progress as it goes."""
    if progress is None:
        return component.run(documents=batch)["documents"]
    embedded: list[Document] = []
    for start in range(0, len(batch), EMBED_SLICE):
        embedded += component.run(documents=batch[start : start + EMBED_SLICE])["documents"]
        progress(len(embedded), len(batch), "embedding")
    return embedded


def _split(
    pending: list[_Converted], splitter: EmbedderTokenSplitter
) -> tuple[list[Document], list[tuple[_Converted, int]]]:
    """All files' chunks, and each file that gave any with its count; a file that fails gets its error."""
    batch: list[Document] = []
    ready: list[tuple[_Converted, int]] = []
    for item in pending:
        name = item.report.file
        try:
            document = Document(content=item.text, meta={"file_path": name, "content_hash": item.content_hash})
            parts = splitter.run([document])["documents"]
        except Exception as error:  # reported against the file; the traceback goes to the log
            logger.warning("splitting %s failed", name, exc_info=True)
            item.report.error = f"{name} could not be split into chunks: {type(error).__name__}: {error}"
            continue
        if not parts:
            item.report.error = f"{name} contains no text"
            continue
        batch.extend(parts)
        ready.append((item, len(parts)))
    return batch, ready
