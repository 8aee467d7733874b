"""Which export a file is, and its conversations: ``parse_any`` is the one entry point of import.

A file is sniffed, never trusted by its name or content type:

    zip (``PK``)                               -> ChatGPT's data export: its conversations.json
    {"format": "ssechat-export", ...}          -> our own JSON export       (transfer.ours)
    [{"mapping": ...}, ...] or []              -> ChatGPT's conversations.json (transfer.chatgpt)
    {"conversationId", "messages"|"messagesTree"}, or a list of them
                                               -> LibreChat's JSON export   (transfer.librechat)
    anything else                              -> ImportFormatError naming what is supported

Then every format's result is held to the same limits (``check_limits``), so that nothing the
chat API would refuse gets in by import: a message's text, a system prompt, at most
``max_content_chars`` (the server's ``SSECHAT_MAX_CONTENT_CHARS``) for the user's and system's
words and ``MAX_ANSWER_CHARS`` for an answer's (longer than any model writes in one answer), a
title or a model name at most 200 characters, no NUL character or lone surrogate anywhere
(PostgreSQL cannot store the one, no database the other), and a parent before each child.

Every refusal is an ``ImportFormatError`` (400) naming where; no other exception may escape for
any input (tests/test_transfer_malformed.py). Pure: bytes in, values out; never IO, never the
store.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from ssechat.transfer import chatgpt, ours
from ssechat.transfer.librechat import is_librechat, parse_librechat
from ssechat.transfer.model import ImportedConversation, ImportFormatError

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

Format = Literal["chatgpt-zip", "ssechat", "chatgpt", "librechat"]

SUPPORTED = (
    "ssechat's JSON export, ChatGPT's conversations.json or its data-export zip, "
    "and LibreChat's JSON export (recursive or flat)"
)

MAX_CONTENT_CHARS = 100_000
"""The default of ``Settings.max_content_chars``: what the chat API accepts in one message."""
MAX_ANSWER_CHARS = 1_000_000
"""An answer's text, reasoning or error: above 128k tokens, more than a model writes at once."""
MAX_NAME_CHARS = 200
"""A title or model name, as the API's rename and model fields allow."""

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive's end
_BOM = b"\xef\xbb\xbf"


def detect(data: bytes) -> tuple[Format, Any]:
    """The format of a file and, for JSON, its parsed value (the zip's bytes for a zip)."""
    if data.startswith(_ZIP_MAGIC):
        return "chatgpt-zip", data
    value = _load(data)
    if ours.is_ours(value):
        return "ssechat", value
    if chatgpt.is_chatgpt(value):
        return "chatgpt", value
    if is_librechat(value):
        return "librechat", value
    raise ImportFormatError(f"this is not an export ssechat can read; it reads {SUPPORTED}", "$")


def parse_any(
    data: bytes, *, max_content_chars: int = MAX_CONTENT_CHARS
) -> list[ImportedConversation]:
    """The conversations of an uploaded file, whatever supported format it is in, checked
    against the limits; ``ImportFormatError`` (400) naming where for anything else."""
    kind, value = detect(data)
    if kind == "chatgpt-zip":
        value = chatgpt.read_zip(value)
        if not chatgpt.is_chatgpt(value):
            raise ImportFormatError(
                f"the zip's {chatgpt.MEMBER} is not a list of ChatGPT conversations",
                f"zip:{chatgpt.MEMBER}",
            )
    if kind == "ssechat":
        conversations = ours.parse_ours(value)
    elif kind == "librechat":
        conversations = parse_librechat(value)
    else:
        conversations = chatgpt.parse_chatgpt(value)
    check_limits(conversations, max_content_chars=max_content_chars)
    return conversations


def _load(data: bytes) -> Any:
    if data.startswith(_BOM):  # Windows editors write one; orjson refuses it
        data = data[len(_BOM) :]
    if not data.strip():
        raise ImportFormatError("the file is empty", "$")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        # orjson's message says what (and at which line and column); pos is where in bytes.
        raise ImportFormatError(
            f"not a zip, and not valid JSON: {error.msg}", f"byte {error.pos}"
        ) from None


def check_limits(
    conversations: list[ImportedConversation], *, max_content_chars: int = MAX_CONTENT_CHARS
) -> None:
    """Refuse what the chat API would not take, or the store could not keep, whichever parser
    made it: over-long texts and names, NUL characters, repeated ids, a parent that is not an
    earlier message, a current leaf that is not a message. ``where`` names the conversation and
    message by the file's ids, since a parser's result no longer knows its JSON path."""
    for conversation in conversations:
        place = f"conversation {_quote(conversation.source_id)}"
        _check(conversation.source_id, "the conversation id", MAX_NAME_CHARS, place)
        _check(conversation.title, "the title", MAX_NAME_CHARS, place)
        _check(conversation.model, "the model", MAX_NAME_CHARS, place)
        _check(conversation.system_prompt, "the system prompt", max_content_chars, place)
        earlier: set[str] = set()
        for message in conversation.messages:
            where = f"{place}, message {_quote(message.id)}"
            if message.id in earlier:
                raise ImportFormatError("the message id appears twice", where)
            if message.parent_id is not None and message.parent_id not in earlier:
                raise ImportFormatError("the message's parent is not an earlier message", where)
            earlier.add(message.id)
            _check(message.id, "the id", MAX_NAME_CHARS, where)
            words = MAX_ANSWER_CHARS if message.role == "assistant" else max_content_chars
            _check(message.content, "the text", words, where)
            _check(message.reasoning, "the reasoning", MAX_ANSWER_CHARS, where)
            _check(message.error, "the error", MAX_ANSWER_CHARS, where)
            _check(message.model, "the model", MAX_NAME_CHARS, where)
            _check(message.finish_reason, "the finish reason", MAX_NAME_CHARS, where)
        leaf = conversation.current_leaf_id
        if leaf is not None and leaf not in earlier:
            raise ImportFormatError("the current message is not one of its messages", place)


def _check(text: str | None, what: str, limit: int, where: str) -> None:
    if text is None:
        return
    if len(text) > limit:
        raise ImportFormatError(f"{what} is {len(text)} characters; the limit is {limit}", where)
    if "\x00" in text:
        raise ImportFormatError(f"{what} holds a NUL character", where)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            # A lone surrogate (``"\\ud800"``), which the standard library's JSON reader (the
            # zip's path) lets through: no database could store it.
            raise ImportFormatError(f"{what} holds a lone surrogate", where) from None


def _quote(value: str) -> str:
    """A file's id in a message, shortened: an id is short unless the file is hostile."""
    return repr(value if len(value) <= 80 else value[:77] + "...")
