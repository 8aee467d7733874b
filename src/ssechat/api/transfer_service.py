"""``TransferService``: export (our JSON document, or Markdown) and import (every supported
format, read by ``ssechat.transfer.stream``), for ``ChatService.transfer``.

Import is streaming and in bounded memory, in two passes over the body:

    request body --chunks--> spool file (a TemporaryFile) + a validating ImportReader
                             (on a worker thread, a MiB at a time; keeps no conversation)
    then, only if the whole file read clean:
    store.import_conversations(lambda: a new ImportReader over the spool file)
                             (parsed again on a worker thread, a batch at a time, each batch
                             written in a short transaction the owner sees only once all are)

so memory holds a MiB of body and a batch of conversations, never the file; a broken file fails
the first pass and never writes; an error in the second pass (it cannot, unless the spool file
changed) deletes what it wrote, and no write of another user waits behind an import for more
than a batch (see ``store.transfer``). A zip is spooled the same way, then its
``conversations.json`` unpacked as a stream from the spool file. The spool file is closed (and
gone) on every path, a client that disconnects mid-upload included. Each import holds a worker
thread and up to ``MAX_IMPORT_BYTES`` of disk, so a process runs at most
``MAX_IMPORTS_AT_ONCE`` of them and one per user (429 beyond). Parsing never runs on the event
loop. This module must never speak HTTP, log a message's text, or reach past the ``Store``
protocol.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterable, Callable, Iterator
from typing import IO, Any, Final

import anyio.to_thread

from ssechat.config import Settings
from ssechat.errors import PayloadTooLargeError, RateLimitedError
from ssechat.store import Store
from ssechat.transfer.markdown import render_markdown
from ssechat.transfer.model import ImportedConversation
from ssechat.transfer.ours import build_document
from ssechat.transfer.stream import ImportReader, read_conversations, zip_conversations

__all__ = ["MAX_IMPORTS_AT_ONCE", "MAX_IMPORT_BYTES", "TOO_LARGE", "TransferService"]

MAX_IMPORT_BYTES: Final = 100 * 1024 * 1024
"""The largest file ``POST /api/import`` takes (413 above)."""
TOO_LARGE: Final = (
    f"the file is larger than the import limit ({MAX_IMPORT_BYTES // (1024 * 1024)} MB)"
)
MAX_IMPORTS_AT_ONCE: Final = 2
"""Imports one process runs at once (each holds a worker thread and a spool file); a user has
one at a time."""
_RETRY_AFTER: Final = 5.0
"""Seconds a refused import is told to wait: about what a large import takes."""
_PIECE_BYTES: Final = 1024 * 1024
"""The body is handed to the worker thread in pieces of about this much: few thread hops, and
memory of a piece."""


class TransferService:
    def __init__(
        self, settings: Settings, store: Store, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._importing: set[str] = set()  # the owners whose import is under way here

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

    async def import_stream(self, chunks: AsyncIterable[bytes], *, owner: str) -> dict[str, Any]:
        """Import an uploaded file, read from ``chunks`` as it arrives, as ``owner``'s:
        ``{imported, skipped, conversations}``. ``PayloadTooLargeError`` (413) past
        ``MAX_IMPORT_BYTES``; ``ImportFormatError`` (400) naming where, and nothing written,
        for a file that is malformed or in no supported format; ``RateLimitedError`` (429),
        before a byte is read, while ``owner`` has an import under way or the process has
        ``MAX_IMPORTS_AT_ONCE``; ``ConflictError`` (409) when a concurrent import of the same
        file took its ids; ``NotFoundError`` (404) when ``owner``'s account was deleted meanwhile
        (nothing is published)."""
        self._take_import_place(owner)
        try:
            limit = self._settings.max_content_chars
            with tempfile.TemporaryFile() as spool:
                await _spool_and_check(chunks, spool, limit)
                ids, skipped = await self._store.import_conversations(
                    lambda: _read_again(spool, limit), owner=owner
                )
        finally:
            self._importing.discard(owner)
        return {"imported": len(ids), "skipped": skipped, "conversations": ids}

    def _take_import_place(self, owner: str) -> None:
        # Checked and taken with no await between: two requests at once cannot both pass.
        if owner in self._importing:
            raise RateLimitedError(
                "an import of yours is under way; wait for it to finish", retry_after=_RETRY_AFTER
            )
        if len(self._importing) >= MAX_IMPORTS_AT_ONCE:
            raise RateLimitedError(
                "the server is busy importing other files; try again shortly",
                retry_after=_RETRY_AFTER,
            )
        self._importing.add(owner)


async def _spool_and_check(chunks: AsyncIterable[bytes], spool: IO[bytes], limit: int) -> None:
    """The first pass: the body into ``spool``, every byte of it checked."""
    reader = ImportReader(max_content_chars=limit)
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:  # a chunked body has no length to check first
            raise PayloadTooLargeError(TOO_LARGE)
        pending.append(chunk)
        pending_size += len(chunk)
        if pending_size >= _PIECE_BYTES:
            piece = b"".join(pending)
            pending.clear()
            pending_size = 0
            await anyio.to_thread.run_sync(_check_piece, spool, reader, piece)
    await anyio.to_thread.run_sync(_check_piece, spool, reader, b"".join(pending))
    await anyio.to_thread.run_sync(_check_end, spool, reader, limit)


def _check_piece(spool: IO[bytes], reader: ImportReader, piece: bytes) -> None:
    spool.write(piece)
    reader.feed(piece)  # the conversations are dropped: the second pass makes them again


def _check_end(spool: IO[bytes], reader: ImportReader, limit: int) -> None:
    if not reader.is_zip:
        reader.close()
        return
    spool.flush()
    spool.seek(0)
    for _ in zip_conversations(spool, max_content_chars=limit):
        pass


def _read_again(spool: IO[bytes], limit: int) -> Iterator[ImportedConversation]:
    """The second pass, on a worker thread (never inside a transaction): the spooled file's
    conversations, one at a time."""
    spool.flush()
    spool.seek(0)
    return read_conversations(spool, max_content_chars=limit, chunk_bytes=_PIECE_BYTES)
