"""The limits every imported conversation is held to, whichever format it came in, so that
nothing the chat API would refuse gets in by import: a message's text, a system prompt, at most
``max_content_chars`` (the server's ``SSECHAT_MAX_CONTENT_CHARS``) for the user's and system's
words and ``MAX_ANSWER_CHARS`` for an answer's (longer than any model writes in one answer), a
title or a model name at most 200 characters, no NUL character or lone surrogate anywhere
(PostgreSQL cannot store the one, no database the other), and a parent before each child.

Pure: values in, ``ImportFormatError`` (400) naming where out; never IO.
"""

from __future__ import annotations

from collections.abc import Iterable

from ssechat.transfer.model import ImportedConversation, ImportFormatError

__all__ = ["MAX_ANSWER_CHARS", "MAX_CONTENT_CHARS", "MAX_NAME_CHARS", "check_limits"]

MAX_CONTENT_CHARS = 100_000
"""The default of ``Settings.max_content_chars``: what the chat API accepts in one message."""
MAX_ANSWER_CHARS = 1_000_000
"""An answer's text, reasoning or error: above 128k tokens, more than a model writes at once."""
MAX_NAME_CHARS = 200
"""A title or model name, as the API's rename and model fields allow."""


def check_limits(
    conversations: Iterable[ImportedConversation], *, max_content_chars: int = MAX_CONTENT_CHARS
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
