"""File ingestion: every format indexes, and each bad upload gets its own error while the others go in."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from pipelines.embedder import EmbedderInfo, resolve_embedder
from pipelines.fast_store import FastDocumentStore
from pipelines.indexing import ChunkSettings
from pipelines.ingest import FileReport, IngestLimits, ingest_files, safe_name

CHUNKS = ChunkSettings(size=128, overlap=16)


@pytest.fixture(scope="session")
def embedder() -> EmbedderInfo:
    return resolve_embedder()


@pytest.fixture
def store() -> FastDocumentStore:
    return FastDocumentStore()


def ingest(
    paths: list[Path], store: FastDocumentStore, embedder: EmbedderInfo, **kwargs: object
) -> dict[str, FileReport]:
    reports = ingest_files(paths, store, embedder, CHUNKS, **kwargs)  # type: ignore[arg-type]
    assert len(reports) == len(paths)
    return {report.file: report for report in reports}


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def text_pdf(text: str) -> bytes:
    """A one-page PDF with real text, written by hand (pypdf can only make blank pages)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n" % (len(objects) + 1, xref) + b"%%EOF\n"
    return bytes(out)


def docx(text: str) -> bytes:
    from docx import Document

    document = Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def sources(store: FastDocumentStore) -> set[str]:
    return {doc.meta["file_path"] for doc in store.filter_documents()}


def top_source(store: FastDocumentStore, word: str) -> str:
    hits = store.bm25_retrieval(word, top_k=1)
    assert hits, f"nothing found for {word!r}"
    return hits[0].meta["file_path"]


def test_mixed_formats_are_indexed_and_retrievable(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    files = [
        write(tmp_path, "notes.txt", "The quokkaword lives on an island off Perth."),
        write(tmp_path, "guide.md", "# Guide\n\nPitch the tent with the zebrafinch pegs first."),
        write(tmp_path, "manual.docx", docx("Replace the marmotfilter every six months.")),
        write(
            tmp_path, "page.html", "<html><body><h1>Stoves</h1><p>The narwhalstove boils water fast.</p></body></html>"
        ),
        write(tmp_path, "prices.csv", "item,price\nwombatlamp,12.50\nkettle,30\n"),
        write(tmp_path, "specs.json", json.dumps({"product": {"name": "pelicanpack", "litres": 40}})),
    ]
    calls: list[tuple[int, int, str]] = []
    reports = ingest(files, store, embedder, progress=lambda done, total, stage: calls.append((done, total, stage)))
    for report in reports.values():
        assert report.status == "indexed", report
        assert report.chunks > 0 and report.characters > 0 and not report.error
    reading = [call for call in calls if call[2] == "reading"]
    embedding = [call for call in calls if call[2] == "embedding"]
    assert reading[-1] == (6, 6, "reading") and calls.index(reading[-1]) < calls.index(embedding[0])
    assert embedding[-1][0] == embedding[-1][1] == store.count_documents()
    assert sources(store) == {path.name for path in files}
    assert all(doc.meta.get("content_hash") for doc in store.filter_documents())
    expected = {
        "quokkaword": "notes.txt",
        "zebrafinch": "guide.md",
        "marmotfilter": "manual.docx",
        "narwhalstove": "page.html",
        "wombatlamp": "prices.csv",
        "pelicanpack": "specs.json",
    }
    for word, name in expected.items():
        assert top_source(store, word) == name


def test_bad_files_do_not_stop_the_others_nor_lose_the_index(
    tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo
):
    ingest([write(tmp_path, "first.txt", "The ibexrope is the first document.")], store, embedder)
    before = store.count_documents()
    reports = ingest(
        [
            write(tmp_path, "empty.txt", b""),
            write(tmp_path, "good.md", "The okapilantern is bright."),
            write(tmp_path, "broken.pdf", b"%PDF-1.4\n garbage"),
            write(tmp_path, "tool.exe", b"MZ\x90\x00"),
        ],
        store,
        embedder,
    )
    assert [r.status for r in reports.values()] == ["error", "indexed", "error", "error"]
    assert store.count_documents() > before
    assert top_source(store, "ibexrope") == "first.txt"
    assert top_source(store, "okapilantern") == "good.md"


def test_empty_file(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    reports = ingest([write(tmp_path, "empty.txt", b""), write(tmp_path, "blank.md", "  \n\n ")], store, embedder)
    assert reports["empty.txt"].status == "error"
    assert reports["empty.txt"].error == "empty.txt is empty"
    assert reports["blank.md"].error == "blank.md contains no text"
    assert store.count_documents() == 0


def test_binary_named_txt(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    noise = bytes(range(256)) * 40
    controls = bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16]) * 200
    reports = ingest([write(tmp_path, "data.txt", noise), write(tmp_path, "ctl.txt", controls)], store, embedder)
    assert reports["data.txt"].status == "error"
    assert "data.txt" in reports["data.txt"].error and "binary" in reports["data.txt"].error
    assert "binary" in reports["ctl.txt"].error
    assert store.count_documents() == 0


def test_corrupt_pdf(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    damaged = text_pdf("hello")[:60]  # the header survives, the objects and xref do not
    reports = ingest([write(tmp_path, "damaged.pdf", damaged)], store, embedder)
    report = reports["damaged.pdf"]
    assert report.status == "error"
    assert report.error.startswith("damaged.pdf ")
    assert "PDF" in report.error


def test_encrypted_pdf(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf("secret heronplan"))))
    writer.encrypt(user_password="hunter2", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    reports = ingest([write(tmp_path, "locked.pdf", buffer.getvalue())], store, embedder)
    assert reports["locked.pdf"].status == "error"
    assert "password" in reports["locked.pdf"].error
    assert store.count_documents() == 0


def test_valid_pdf(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    reports = ingest([write(tmp_path, "flyer.pdf", text_pdf("The kestrelboot is waterproof."))], store, embedder)
    report = reports["flyer.pdf"]
    assert report.status == "indexed", report
    assert report.pages == 1 and report.chunks == 1
    assert top_source(store, "kestrelboot") == "flyer.pdf"


def test_latin1_and_utf16_are_decoded(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    text = "Crème brûlée à la façon de Zoë, naïve señor."
    files = [
        write(tmp_path, "latin1.txt", text.encode("latin-1")),
        write(tmp_path, "utf16.txt", ("utf16 " + text).encode("utf-16")),  # with a byte order mark
        write(tmp_path, "utf16le.md", ("le " + text).encode("utf-16-le")),  # without one
    ]
    reports = ingest(files, store, embedder)
    assert all(report.status == "indexed" for report in reports.values()), reports
    contents = {doc.meta["file_path"]: doc.content for doc in store.filter_documents()}
    assert contents["latin1.txt"] == text
    assert contents["utf16.txt"] == "utf16 " + text
    assert contents["utf16le.md"] == "le " + text


def test_file_over_max_bytes(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    limits = IngestLimits(max_bytes=1024 * 1024)
    big = write(tmp_path, "big.txt", "word " * 300_000)
    reports = ingest([big, write(tmp_path, "small.txt", "A small file.")], store, embedder, limits=limits)
    assert reports["big.txt"].status == "error"
    assert reports["big.txt"].error == "big.txt is 1.4 MB, over the 1 MB limit"
    assert reports["small.txt"].status == "indexed"


def test_docx_zip_bomb(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as member:
            block = b"\0" * (1024 * 1024)
            for _ in range(24):
                member.write(block)
    assert len(buffer.getvalue()) < 100_000  # tiny on disk, 24 MB unpacked
    limits = IngestLimits(max_unzipped_bytes=16 * 1024 * 1024)
    reports = ingest([write(tmp_path, "bomb.docx", buffer.getvalue())], store, embedder, limits=limits)
    assert reports["bomb.docx"].status == "error"
    assert "bomb.docx unpacks to 24 MB, over the 16 MB limit" in reports["bomb.docx"].error


def test_path_traversal_and_absolute_names(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    upload = tmp_path / "uploads"
    write(upload, "notes.txt", "The lynxsled is fast.")
    write(upload, "other.md", "The tapirmug holds tea.")
    before = sorted(tmp_path.rglob("*"))
    dotted = upload / ".." / "uploads" / "notes.txt"
    absolute = (upload / "other.md").resolve()
    reports = ingest([dotted, absolute, upload / ".."], store, embedder)
    assert reports["notes.txt"].status == "indexed"
    assert reports["other.md"].status == "indexed"
    assert sources(store) == {"notes.txt", "other.md"}
    assert [r.error for r in reports.values() if r.status == "error"] == [f"{str(upload / '..')!r} has no file name"]
    assert sorted(tmp_path.rglob("*")) == before  # nothing written anywhere
    assert safe_name("..\\..\\windows\\evil.txt") == "evil.txt"
    assert safe_name("/etc/passwd") == "passwd"


def test_duplicate_in_one_call_and_in_a_later_call(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    first = write(tmp_path / "a", "same.txt", "The puffinstove runs on gas.")
    again = write(tmp_path / "b", "same.txt", "The puffinstove runs on gas.")
    reports = ingest_files([first, again], store, embedder, CHUNKS)
    assert [r.status for r in reports] == ["indexed", "skipped"]
    assert "same content" in reports[1].error
    count = store.count_documents()
    later = ingest_files([write(tmp_path / "c", "copy.txt", "The puffinstove runs on gas.")], store, embedder, CHUNKS)
    assert later[0].status == "skipped" and "already indexed" in later[0].error and "same.txt" in later[0].error
    assert store.count_documents() == count


def test_same_name_with_new_content_replaces_the_old_chunks(
    tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo
):
    ingest([write(tmp_path / "v1", "price.txt", "The gannettent costs 100 euros.")], store, embedder)
    ingest([write(tmp_path / "v1", "keep.txt", "The albatrossmat stays.")], store, embedder)
    reports = ingest([write(tmp_path / "v2", "price.txt", "The gannettent costs 120 euros now.")], store, embedder)
    assert reports["price.txt"].status == "indexed"
    chunks = [doc.content for doc in store.filter_documents() if doc.meta["file_path"] == "price.txt"]
    assert chunks == ["The gannettent costs 120 euros now."]
    assert top_source(store, "albatrossmat") == "keep.txt"


def test_wrong_extension(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    reports = ingest(
        [
            write(tmp_path, "setup.exe", b"MZ\x90\x00\x03"),
            write(tmp_path, "report.txt", text_pdf("hidden")),
            write(tmp_path, "letter.pdf", "just text, not a PDF"),
            write(tmp_path, "memo.docx", "plain text, not a zip"),
        ],
        store,
        embedder,
    )
    assert all(report.status == "error" for report in reports.values())
    assert "unsupported file type '.exe'" in reports["setup.exe"].error
    assert (
        reports["report.txt"].error
        == "report.txt looks like a PDF document: its content does not match the .txt extension"
    )
    assert "does not match the .pdf extension" in reports["letter.pdf"].error
    assert "does not match the .docx extension" in reports["memo.docx"].error


def test_one_line_of_five_megabytes(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    # Words past the tokenizer's 100-character limit are one token each, so the line stays a few hundred
    # chunks and the test stays fast; the point is that 5 MB without a line break flows through.
    word = "x" * 150 + " "
    line = word * (5 * 1024 * 1024 // len(word)) + "The final sentence mentions the osprey."
    reports = ingest([write(tmp_path, "one-line.txt", line)], store, embedder)
    report = reports["one-line.txt"]
    assert report.status == "indexed", report
    assert report.characters == len(line)
    assert report.chunks > 100
    assert all(doc.meta["tokens"] <= CHUNKS.size for doc in store.filter_documents())
    assert top_source(store, "osprey") == "one-line.txt"


def test_html_script_and_style_are_not_indexed(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    html = """<html><head><title>Shop</title>
    <style>.cheetahclass { color: red; }</style>
    <script>var jaguarsecret = "tracking"; function leopardfn() {}</script></head>
    <body><article><h1>Lanterns</h1><p>The caracallamp runs for twelve hours on one charge.</p>
    <script>console.log("pumaevent")</script></article></body></html>"""
    reports = ingest([write(tmp_path, "shop.htm", html)], store, embedder)
    assert reports["shop.htm"].status == "indexed"
    text = " ".join(doc.content or "" for doc in store.filter_documents())
    assert "caracallamp" in text
    for code in ("cheetahclass", "jaguarsecret", "leopardfn", "pumaevent", "color: red"):
        assert code not in text


def test_a_thousand_tiny_files(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    files = [
        write(tmp_path / "many", f"note-{i:04d}.txt", f"Note {i}: bin {i % 7} holds item{i}.") for i in range(1000)
    ]
    calls: list[int] = []
    start = time.perf_counter()
    reports = ingest_files(files, store, embedder, CHUNKS, progress=lambda done, total, stage: calls.append(done))
    elapsed = time.perf_counter() - start
    assert all(report.status == "indexed" for report in reports)
    assert store.count_documents() == 1000
    assert calls[:1000] == list(range(1, 1001))  # reading, file by file
    assert calls[1000:] == [256, 512, 768, 1000]  # embedding, slice by slice
    assert top_source(store, "item537") == "note-0537.txt"
    assert elapsed < 60, f"{elapsed:.1f} s"


def test_too_many_files(tmp_path: Path, store: FastDocumentStore, embedder: EmbedderInfo):
    files = [write(tmp_path, f"{i}.txt", f"File {i}.") for i in range(3)]
    reports = ingest_files(files, store, embedder, CHUNKS, limits=IngestLimits(max_files=2))
    assert [r.status for r in reports] == ["indexed", "indexed", "error"]
    assert "more than 2 files" in reports[2].error
