"""Private workspaces: what one browser session uploads, indexed in a store that only that session retrieves from.

The shared knowledge base stays read-only; each workspace has its own in-memory store and keeps copies of its
indexed files on disk so they can be re-indexed with other chunk settings. Workspaces live as long as the
process, and are dropped with their files after a while unused; their folder goes when the process ends (or, after a
crash, when the next one starts). A server keeps the web framework's upload cache in that folder too, and moves each
upload out of it into the workspace as soon as it arrives, since the cache serves whatever it holds to anyone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from haystack import Document
from haystack.document_stores.types import DocumentStore

from adapters.errors import UserError
from adapters.jobs.process import process_alive
from pipelines.embedder import EmbedderInfo
from pipelines.fast_store import FastDocumentStore
from pipelines.indexing import ChunkSettings
from pipelines.ingest import FileReport, IngestLimits, Progress, ingest_files
from pipelines.store import new_store

_ID = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


@dataclass
class Workspace:
    id: str
    folder: Path  # copies of the indexed files, named as their chunks' `file_path`
    chunking: ChunkSettings
    store: FastDocumentStore = field(default_factory=new_store)
    reports: dict[str, FileReport] = field(default_factory=dict)  # by file name, in upload order
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def files(self) -> list[str]:
        """Names of the files with chunks in the store."""
        return [name for name, report in self.reports.items() if report.chunks]

    @property
    def inbox(self) -> Path:
        """Uploads on their way in, and fine-tune datasets: beside `folder`, as any name may be an uploaded file's."""
        return self.folder.with_name(f"{self.folder.name}.inbox")


def is_workspace_id(value: str | None) -> bool:
    """Whether `value` has the form `Workspaces.open` keeps as an id (never a path: letters, digits, - and _)."""
    return bool(value and _ID.match(value))


def chunks_of_file(store: DocumentStore, name: str) -> list[Document]:
    found = store.filter_documents({"field": "meta.file_path", "operator": "==", "value": name})
    return sorted(found, key=lambda d: d.meta.get("split_id", 0))


class Workspaces:
    """Every session's workspace by id: an explicit cache, pruned of idle workspaces whenever one is opened."""

    def __init__(
        self,
        parent: Path,
        embedder: EmbedderInfo,
        chunking: ChunkSettings,
        limits: IngestLimits = IngestLimits(),
        idle_s: float = 6 * 3600,
        max_chunks: int = 50_000,  # ~75 MB of MiniLM vectors: one browser cannot fill a shared server's memory
    ) -> None:
        # One folder per process, so a CLI run next to the server never touches the server's files.
        self.root = parent / str(os.getpid())
        self.upload_cache = self.root / UPLOAD_CACHE
        self.embedder = embedder
        self.chunking = chunking
        self.limits = limits
        self.idle_s = idle_s
        self.max_chunks = max_chunks
        self._workspaces: dict[str, Workspace] = {}
        self._lock = threading.Lock()
        _remove_orphans(parent)
        _remove_unshared(self.root)  # left by a crashed process with our pid: containers reuse pids
        _OPEN.add(self)
        # Also runs at interpreter exit, or when this object is collected without close().
        self._remove_folder = weakref.finalize(self, _remove_unshared, self.root)

    def close(self) -> None:
        """Forget every workspace and remove this process's copies of the uploaded files; safe to call twice."""
        with self._lock:
            self._workspaces.clear()
            _OPEN.discard(self)
            self._remove_folder()

    @property
    def closed(self) -> bool:
        return self not in _OPEN

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(24)

    def store(self, workspace_id: str) -> FastDocumentStore | None:
        """The workspace's store, for the query pipeline's private retrievers."""
        workspace = self._workspaces.get(workspace_id)
        return workspace.store if workspace is not None else None

    def open(self, workspace_id: str | None) -> Workspace:
        """The workspace with this id, a new empty one under it (after a restart, or once it was dropped), or a
        new one under a fresh id when the id is missing or malformed."""
        if not workspace_id or not _ID.match(workspace_id):
            workspace_id = self.new_id()
        with self._lock:
            if self.closed:  # nothing would remove what it wrote now, nor keep another `Workspaces` from removing it
                raise RuntimeError(f"the workspaces in {self.root} are closed")
            self._drop_idle()
            workspace = self._workspaces.get(workspace_id)
            if workspace is None:
                folder = self.root / workspace_id
                workspace = self._workspaces[workspace_id] = Workspace(workspace_id, folder, self.chunking)
            workspace.used = time.monotonic()
            return workspace

    def upload(self, workspace: Workspace, paths: Sequence[Path], progress: Progress | None = None) -> list[FileReport]:
        """Index uploaded files into the workspace; one report per file, as `ingest_files` gives them."""
        with workspace.lock:
            held = workspace.store.count_documents()
            if held >= self.max_chunks:
                raise UserError(
                    f"Your files already hold {held} chunks, the most one browser may keep here ({self.max_chunks}, "
                    "PLAYGROUND_MAX_WORKSPACE_CHUNKS). Delete some files first."
                )
            reports = ingest_files(paths, workspace.store, self.embedder, workspace.chunking, self.limits, progress)
            workspace.folder.mkdir(parents=True, exist_ok=True)
            for path, report in zip(paths, reports, strict=True):
                self._record(workspace, path, report)
            return reports

    @contextlib.contextmanager
    def taken(self, workspace: Workspace, paths: Sequence[Path], cache: Path | None) -> Iterator[list[Path]]:
        """The uploads in `cache` moved into a new folder of the workspace's inbox for the time of the block, which
        removes that folder (what is kept is copied into the workspace's folder); other paths stay where they are."""
        batch = workspace.inbox / secrets.token_hex(8)
        try:
            yield [_take(path, batch / str(i) / path.name, cache) for i, path in enumerate(paths)]
        finally:
            for path in paths:  # what could not be moved goes too
                _discard(path, cache)
            shutil.rmtree(batch, ignore_errors=True)

    def keep(self, workspace: Workspace, path: Path, cache: Path | None) -> Path:
        """An upload in `cache` moved into the workspace's inbox, where it stays until the workspace goes."""
        try:
            return _take(path, workspace.inbox / secrets.token_hex(8) / path.name, cache)
        finally:
            _discard(path, cache)

    def reindex(
        self, workspace: Workspace, chunking: ChunkSettings, progress: Progress | None = None
    ) -> list[FileReport]:
        """Index every kept file again with new chunk settings into a new store, swapped in when done."""
        if chunking.overlap >= chunking.size:
            raise UserError(f"the overlap ({chunking.overlap}) must be smaller than the chunk size ({chunking.size})")
        with workspace.lock:
            names = workspace.files()
            store = new_store()
            reports = ingest_files(
                [workspace.folder / name for name in names], store, self.embedder, chunking, self.limits, progress
            )
            workspace.store, workspace.chunking = store, chunking
            for report in reports:
                workspace.reports[report.file] = report
            return reports

    def delete(self, workspace: Workspace, name: str) -> int:
        """Remove a file and all its chunks; returns how many chunks went."""
        with workspace.lock:
            chunks = chunks_of_file(workspace.store, name)
            workspace.store.delete_documents([d.id for d in chunks])
            workspace.reports.pop(name, None)
            (workspace.folder / name).unlink(missing_ok=True)
            return len(chunks)

    @staticmethod
    def _record(workspace: Workspace, path: Path, report: FileReport) -> None:
        name = report.file
        earlier = workspace.reports.get(name)
        if report.status == "indexed":
            shutil.copyfile(path, workspace.folder / name)
            workspace.reports[name] = report
        elif earlier is not None and earlier.chunks:  # skipped or failed: the version indexed before stays
            note = "" if report.status == "skipped" else " The version indexed before is kept."
            workspace.reports[name] = replace(earlier, status=report.status, error=report.error + note)
        else:
            workspace.reports[name] = report

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for workspace_id, workspace in list(self._workspaces.items()):
            if now - workspace.used > self.idle_s and not workspace.lock.locked():
                del self._workspaces[workspace_id]
                shutil.rmtree(workspace.folder, ignore_errors=True)
                shutil.rmtree(workspace.inbox, ignore_errors=True)


_OPEN: weakref.WeakSet[Workspaces] = weakref.WeakSet()
UPLOAD_CACHE = "uploads"  # shorter than any workspace id, so never one's folder


def upload_cache() -> Path | None:
    """Where a server should have the web framework keep uploads: in the folder of its one open `Workspaces`, so a
    stop removes them with the workspaces, and so does the next start after a crash. None unless exactly one is open."""
    opened = list(_OPEN)
    return opened[0].upload_cache if len(opened) == 1 else None


def close_all() -> None:
    """Close every open `Workspaces` of this process: what a stopping server calls."""
    for workspaces in list(_OPEN):
        workspaces.close()


def _remove_unshared(root: Path) -> None:
    if not any(other.root == root for other in _OPEN):
        shutil.rmtree(root, ignore_errors=True)


def _remove_orphans(parent: Path) -> None:
    """Drop the folders of processes that are gone: their workspaces belong to no live session any more."""
    for folder in parent.glob("*"):
        if folder.name.isdigit() and not process_alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and Path(path).resolve().is_relative_to(Path(folder).resolve())


def _take(path: Path, target: Path, cache: Path | None) -> Path:
    """`path` moved to `target` if it is in `cache`; any other path is left alone and returned as it is."""
    if not _inside(path, cache):
        return path
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # taken already by an identical upload: reported as unreadable
        shutil.move(path, target)
    return target


def _discard(path: Path, cache: Path | None) -> None:
    """Remove an upload from `cache`, and the folder made for it there once it is empty (another upload of the same
    content shares that folder)."""
    if not _inside(path, cache):
        return
    Path(path).unlink(missing_ok=True)
    folder = Path(path).parent
    if folder.resolve() != Path(cache).resolve():
        with contextlib.suppress(OSError):  # not empty
            folder.rmdir()
