"""Which export a file is, and its conversations, for a file already in memory: ``parse_any``
is ``transfer.stream``'s reader fed the whole file, so there is one code path, the server's.

A file is sniffed, never trusted by its name or content type:

    zip (``PK``)                               -> ChatGPT's data export: its conversations.json
    {"format": "ssechat-export", ...}          -> our own JSON export       (transfer.ours)
    [{"mapping": ...}, ...] or []              -> ChatGPT's conversations.json (transfer.chatgpt)
    {"conversationId", "messages"|"messagesTree"}, or a list of them
                                               -> LibreChat's JSON export   (transfer.librechat)
    anything else                              -> ImportFormatError naming what is supported

Then every format's result is held to the same limits (``transfer.limits.check_limits``).
Every refusal is an ``ImportFormatError`` (400) naming where; no other exception may escape for
any input (tests/test_transfer_malformed.py). Pure: bytes in, values out; never IO, never the
store.
"""

from __future__ import annotations

import io

from ssechat.transfer.limits import (
    MAX_ANSWER_CHARS,
    MAX_CONTENT_CHARS,
    MAX_NAME_CHARS,
    check_limits,
)
from ssechat.transfer.model import ImportedConversation
from ssechat.transfer.stream import SUPPORTED, Format, ImportReader, read_conversations

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_CONTENT_CHARS",
    "MAX_NAME_CHARS",
    "SUPPORTED",
    "Format",
    "check_limits",
    "detect",
    "parse_any",
]


def detect(data: bytes) -> Format:
    """The format of a file (``ImportFormatError`` if it is none ssechat reads)."""
    reader = ImportReader()
    reader.feed(data)
    if not reader.is_zip:
        reader.close()
    found = reader.format
    assert found is not None  # a file read to its end without an error said what it is
    return found


def parse_any(
    data: bytes, *, max_content_chars: int = MAX_CONTENT_CHARS
) -> list[ImportedConversation]:
    """The conversations of an uploaded file, whatever supported format it is in, checked
    against the limits; ``ImportFormatError`` (400) naming where for anything else."""
    return list(read_conversations(io.BytesIO(data), max_content_chars=max_content_chars))
