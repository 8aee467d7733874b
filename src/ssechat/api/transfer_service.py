"""``TransferService``: export (our JSON document, or Markdown) and import (every supported
format, through ``ssechat.transfer.detect``), for ``ChatService.transfer``.

Import reads the whole body (up to ``MAX_IMPORT_BYTES``) before it parses: the streaming,
bounded-memory reader of a 100 MB file is a later increment. Parsing runs off the event loop
(a big file takes a while), and the conversations are written in one store transaction: a
malformed or unsupported file imports nothing. This module must never speak HTTP, log a
message's text, or reach past the ``Store`` protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import anyio.to_thread

from ssechat.config import Settings
from ssechat.store import Store
from ssechat.transfer.detect import parse_any
from ssechat.transfer.markdown import render_markdown
from ssechat.transfer.ours import build_document

__all__ = ["MAX_IMPORT_BYTES", "TransferService"]

MAX_IMPORT_BYTES: Final = 100 * 1024 * 1024
"""The largest file ``POST /api/import`` takes (413 above)."""


class TransferService:
    def __init__(
        self, settings: Settings, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock

    async def export_json(
        self, *, owner: str, conversation_id: str | None = None
    ) -> dict[str, Any]:
        """The v1 document of one conversation of ``owner`` (``NotFoundError`` if not theirs), or
        of all of them."""
        found = await self._store.export_conversations(owner=owner, conversation_id=conversation_id)
        return build_document(found, exported_at=self._clock())

    async def export_markdown(self, *, owner: str, conversation_id: str) -> tuple[str, str]:
        """The Markdown of a conversation's current branch, and its title (for a file name)."""
        ((conversation, messages),) = await self._store.export_conversations(
            owner=owner, conversation_id=conversation_id
        )
        return render_markdown(conversation, messages), conversation.title or "conversation"

    async def import_file(self, body: bytes, *, owner: str) -> dict[str, Any]:
        """Import an uploaded file's conversations as ``owner``'s: ``{imported, skipped,
        conversations}``; ``ImportFormatError`` (400) naming where, and nothing written, for a
        file that is malformed or in no supported format."""
        limit = self._settings.max_content_chars
        conversations = await anyio.to_thread.run_sync(
            lambda: parse_any(body, max_content_chars=limit)
        )
        ids, skipped = await self._store.import_conversations(conversations, owner=owner)
        return {"imported": len(ids), "skipped": skipped, "conversations": ids}
