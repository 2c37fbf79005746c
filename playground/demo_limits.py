"""The limits a public demo sets through environment variables, what each protects, and how the page says them.

Uploads (per file, per upload, chunks one browser keeps, hours an idle browser's files are kept) protect the
server's disk and memory from one visitor; training steps and fine-tunes at once protect its CPU or GPU time. The
comparisons' queue and concurrency are `playground.load`'s. Every limit has a default that a private server never
notices; a public Space tightens them (see the README's "Share it").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.errors import UserError
from pipelines.ingest import IngestLimits

if TYPE_CHECKING:
    from playground.config import Settings

MB = 1024 * 1024


@dataclass(frozen=True)
class DemoLimits:
    upload_mb: int
    upload_files: int
    workspace_chunks: int
    idle_hours: float
    train_steps: int  # 0: no limit
    jobs: int  # fine-tunes running or waiting at once; 0: no limit

    @classmethod
    def of(cls, settings: Settings) -> DemoLimits:
        """The settings' limits; a value out of range is a one-line error naming its variable."""
        for name, value, least in (
            ("PLAYGROUND_MAX_UPLOAD_MB", settings.max_upload_mb, 1),
            ("PLAYGROUND_MAX_UPLOAD_FILES", settings.max_upload_files, 1),
            ("PLAYGROUND_MAX_WORKSPACE_CHUNKS", settings.max_workspace_chunks, 1),
            ("PLAYGROUND_SESSION_IDLE_HOURS", settings.session_idle_hours, 0.01),
            ("PLAYGROUND_MAX_TRAIN_STEPS", settings.max_train_steps, 0),
            ("PLAYGROUND_MAX_JOBS", settings.max_jobs, 0),
        ):
            if value < least:
                raise UserError(f"{name} must be {least:g} or more, got {value:g}")
        return cls(
            settings.max_upload_mb,
            settings.max_upload_files,
            settings.max_workspace_chunks,
            settings.session_idle_hours,
            settings.max_train_steps,
            settings.max_jobs,
        )

    @property
    def ingest(self) -> IngestLimits:
        return IngestLimits(max_bytes=self.upload_mb * MB, max_files=self.upload_files)

    @property
    def idle_s(self) -> float:
        return self.idle_hours * 3600

    def documents_note(self) -> str:
        """The Documents tab's line: what one browser may upload and for how long it is kept."""
        return (
            f"Limits here: files up to {self.upload_mb} MB, {self.upload_files} per upload, {self.workspace_chunks} "
            f"chunks per browser, kept {self.idle_hours:g} h after your last visit."
        )

    def finetune_note(self) -> str:
        """The Fine-tune tab's line, when this server limits training ("" when it does not)."""
        parts = []
        if self.train_steps:
            parts.append(f"at most {self.train_steps} training steps per fine-tune")
        if self.jobs:
            parts.append(f"{self.jobs} fine-tune{'s' if self.jobs != 1 else ''} running or waiting at once")
        return f"Limits here: {', '.join(parts)}." if parts else ""

    def check_steps(self, steps: int) -> None:
        if self.train_steps and steps > self.train_steps:
            raise UserError(
                f"This fine-tune would train {steps} steps; this server allows at most {self.train_steps} "
                "(PLAYGROUND_MAX_TRAIN_STEPS): lower the maximum steps or the epochs."
            )

    def check_jobs(self, active: int) -> None:
        if self.jobs and active >= self.jobs:
            raise UserError(
                f"{active} fine-tune{'s are' if active != 1 else ' is'} running or waiting, the most this server "
                f"takes (PLAYGROUND_MAX_JOBS); try again when one has ended."
            )
