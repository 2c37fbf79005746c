"""Who may do what on the server: the owner, and visitors of a shared demo.

A local run has one user, the person at the server, who is its owner. A shared demo (a Hugging Face Space,
or `PLAYGROUND_SHARED=1`) serves strangers: each browser is a visitor known by its private workspace id,
who may use the models, its own uploads and the adapters it trained; the owner's actions (the server's
`HF_TOKEN`, deleting, exporting or publishing adapters others trained) need `PLAYGROUND_OWNER_PASSWORD`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from adapters.errors import UserError
from adapters.registry import AdapterInfo
from playground.config import Settings


@dataclass(frozen=True)
class Caller:
    """One request's asker: its browser's workspace id, and whether it may act as the owner."""

    workspace: str | None = None
    owner: bool = False


class Roles:
    def __init__(self, settings: Settings) -> None:
        self.shared = settings.shared
        self._password = settings.owner_password

    def caller(self, workspace: str | None, unlocked: bool = False) -> Caller:
        return Caller(workspace, owner=not self.shared or unlocked)

    def tag(self, workspace: str | None) -> str:
        """What a measurement stored for this browser (an evaluation run, a freshness drill) is marked with, on a
        shared demo: a digest of its workspace id, never the id itself (a run's record can be downloaded). "" on a
        server with one user, or without a workspace: then only the owner sees it."""
        if not self.shared or not workspace:
            return ""
        return hashlib.sha256(workspace.encode()).hexdigest()[:32]

    def may_see(self, tag: str | None, caller: Caller) -> bool:
        """A stored measurement: the owner sees every one; a visitor only those its own browser made (their questions
        and answers may come from its private uploads, and the advisor quotes them as the visitor's own)."""
        return caller.owner or (bool(tag) and tag == self.tag(caller.workspace))

    def unlock(self, typed: str) -> bool:
        """Whether `typed` is the owner's password (compared in constant time); never true without one set."""
        return bool(self._password) and hmac.compare_digest(typed.encode(), self._password.encode())

    def may_use(self, adapter: AdapterInfo, caller: Caller) -> bool:
        """Published adapters (no owner) are everyone's; a visitor's stay its own until the owner publishes."""
        return caller.owner or not adapter.owner or adapter.owner == caller.workspace

    def may_manage(self, adapter: AdapterInfo, caller: Caller) -> bool:
        """Delete or export: the owner, or the visitor who trained it."""
        return caller.owner or (bool(adapter.owner) and adapter.owner == caller.workspace)

    def hub_token(self, typed: str | None, caller: Caller) -> str:
        """The token a push uses: the one typed, else the server's `HF_TOKEN` for the owner only."""
        if typed and typed.strip():
            return typed.strip()
        if not caller.owner:
            raise UserError(
                "Type your own Hugging Face token: on this shared demo the server's token is for its owner."
            )
        token = os.environ.get("HF_TOKEN", "").strip()
        if not token:
            raise UserError("Type a Hugging Face token (the server has no HF_TOKEN set).")
        return token

    def note(self) -> str:
        """What the page says about roles, when they apply."""
        if not self.shared:
            return ""
        unlock = (
            "The owner unlocks deleting, exporting and publishing any adapter, and pushing with the server's token, "
            "with the owner password."
            if self._password
            else "No owner password is set (PLAYGROUND_OWNER_PASSWORD), so nobody can use the server's token here."
        )
        return (
            "**Shared demo.** Adapters you train here are yours (this browser) until the owner publishes them; "
            "you can delete and export your own, and push any you can see with your own token. Your fine-tunes' "
            "progress, evaluation runs and freshness drills are shown to this browser only (others' jobs appear in "
            f"the queue as another visitor's). {unlock}"
        )
