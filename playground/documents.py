"""The Documents tab's service: a session's uploads, their table, chunk settings, previews, re-index and delete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.errors import UserError
from pipelines.indexing import ChunkSettings
from pipelines.ingest import FileReport, Progress
from playground.demo_limits import DemoLimits
from playground.runtime import Runtime
from playground.workspaces import Workspace, chunks_of_file

TABLE_HEADERS = ["File", "Status", "Pages", "Characters", "Chunks", "Message"]
MAX_CHUNK_TOKENS = 2048
SHARED, MINE = "shared", "mine"


def table_row(report: FileReport) -> list[Any]:
    pages = "" if report.pages is None else report.pages
    return [report.file, report.status, pages, report.characters, report.chunks, report.error]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def upload_message(reports: Sequence[FileReport]) -> str:
    """What one upload did, counted from its own reports (Markdown): how many of its files were indexed, into
    how many chunks, and each file that was skipped or failed with the reason, which names the file."""
    indexed = [r for r in reports if r.status == "indexed"]
    skipped = [r for r in reports if r.status == "skipped"]
    failed = [r for r in reports if r.status not in {"indexed", "skipped"}]
    message = f"Indexed {len(indexed)} of {_count(len(reports), 'file')}"
    if indexed:
        message += f" ({_count(sum(r.chunks for r in indexed), 'chunk')})"
    others = [f"{len(skipped)} skipped as already indexed"] if skipped else []
    others += [f"{len(failed)} could not be indexed"] if failed else []
    if not others:
        return message + "."
    reasons = [r.error for r in skipped + failed]
    if len(reasons) == 1:
        return f"{message}; {others[0]}: {reasons[0]}"
    return f"{message}; {' and '.join(others)}:\n" + "".join(f"\n- {reason}" for reason in reasons)


@dataclass(frozen=True)
class Uploaded:
    rows: list[list[Any]]  # the whole table of the workspace's files
    message: str  # what this upload did


class DocumentsService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.workspaces = runtime.workspaces

    def limits_note(self) -> str:
        """What one browser may upload here and how long it is kept (the server's limits, in one line)."""
        return DemoLimits.of(self.runtime.settings).documents_note()

    @property
    def chunking(self) -> ChunkSettings:
        """The chunk size and overlap a new upload gets (the form starts from these)."""
        return self.workspaces.chunking

    @property
    def embedder_tokens(self) -> int:
        """The most word pieces of a chunk the embedder reads (its window less the special tokens)."""
        return self.runtime.embedder.max_chunk_tokens

    def workspace(self, workspace_id: str | None) -> Workspace:
        return self.workspaces.open(workspace_id)

    def upload(self, workspace_id: str | None, paths: Sequence[Path], progress: Progress | None = None) -> list[Any]:
        return self.add(workspace_id, paths, progress).rows

    def add(
        self,
        workspace_id: str | None,
        paths: Sequence[Path],
        progress: Progress | None = None,
        cache: Path | None = None,
    ) -> Uploaded:
        """Index the files into the workspace: its table and a message on what became of these files. Files in
        `cache` (the web server's upload cache) are moved out of it first, and none is left there, even on failure."""
        workspace = self.workspace(workspace_id)
        with self.workspaces.taken(workspace, paths, cache) as taken:
            if not taken:
                raise UserError("Choose one or more files to upload first.")
            reports = self.workspaces.upload(workspace, taken, progress)
        return Uploaded(self.table(workspace), upload_message(reports))

    def table(self, workspace: Workspace) -> list[list[Any]]:
        return [table_row(report) for report in workspace.reports.values()]

    def chunk_warning(self, size: int, overlap: int) -> str:
        """Empty when the settings are fine; otherwise what is wrong, in words."""
        problems = self._chunk_problems(size, overlap)
        if problems:
            return " ".join(problems)
        if size > self.embedder_tokens:
            return (
                f"Chunks of {size} tokens are longer than the {self.embedder_tokens} tokens "
                f"{self.runtime.embedder.name} reads: the rest of each chunk would not be embedded, so dense "
                "retrieval would not see it (BM25 and the answer still would)."
            )
        return ""

    def _chunk_problems(self, size: int, overlap: int) -> list[str]:
        problems = []
        if not 16 <= size <= MAX_CHUNK_TOKENS:
            problems.append(f"The chunk size must be between 16 and {MAX_CHUNK_TOKENS} tokens, not {size}.")
        if not 0 <= overlap < size:
            problems.append(f"The overlap must be at least 0 and smaller than the chunk size ({size}), not {overlap}.")
        return problems

    def reindex(
        self, workspace_id: str | None, size: int, overlap: int, progress: Progress | None = None
    ) -> list[list[Any]]:
        problems = self._chunk_problems(size, overlap)
        if problems:
            raise UserError(" ".join(problems))
        workspace = self.workspace(workspace_id)
        if not workspace.files():
            raise UserError("There are no uploaded files to re-index yet.")
        self.workspaces.reindex(workspace, ChunkSettings(size, overlap), progress)
        return self.table(workspace)

    def delete(self, workspace_id: str | None, name: str) -> tuple[int, list[list[Any]]]:
        workspace = self.workspace(workspace_id)
        if name not in workspace.reports:
            raise UserError(f"{name!r} is not one of your files.")
        removed = self.workspaces.delete(workspace, name)
        return removed, self.table(workspace)

    def previewable(self, workspace_id: str | None) -> list[tuple[str, str]]:
        """(label, value) of every file with chunks: the session's own first, then the shared ones."""
        mine = [(f"{name} (yours)", f"{MINE}:{name}") for name in self.workspace(workspace_id).files()]
        shared = [(f"{name} (shared)", f"{SHARED}:{name}") for name in self.runtime.shared_sources]
        return mine + shared

    def preview(self, workspace_id: str | None, choice: str) -> list[dict[str, Any]]:
        """The chunks of one file, in order, as the retriever would return them."""
        origin, _, name = (choice or "").partition(":")
        store = self.workspace(workspace_id).store if origin == MINE else self.runtime.store
        return [
            {"source": name, "content": d.content or "", "private": origin == MINE, "index": i}
            for i, d in enumerate(chunks_of_file(store, name), start=1)
        ]

    def shared_summary(self) -> str:
        files = self.runtime.shared_sources
        return (
            f"Shared knowledge base (read-only, everyone retrieves from it): {len(files)} files, "
            f"{self.runtime.store.count_documents()} chunks."
        )
