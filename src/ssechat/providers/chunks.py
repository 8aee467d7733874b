"""The chat-completions stream's wire format, sans-IO: body bytes to frames, frames to ``Delta``.

``FrameSplitter`` cuts an upstream body into SSE frames. The common frame, ``data: {...}`` alone
ending in LF LF, is cut with ``bytes.find`` and handed on as the payload's bytes, ready for
``orjson``; every other frame (comments, ``event:`` / ``id:`` / ``retry:`` fields, several data
lines) goes through ``ssechat.sse.EventDecoder``, and a stream with any CR or a leading BOM goes
through it entirely, so that what comes out is exactly what the WHATWG algorithm gives, at a
quarter of the cost per frame. ``parse_chunk`` turns one ``chat.completion.chunk`` into a
``Delta``; ``completion_deltas`` does the same for a whole (non-streamed) ``chat.completion``.
``read_deltas`` does both for one network read and joins the texts that arrived together into
one ``Delta``: a run then encodes, stores and sends one event for them instead of one per token
(the text is the same; only the number of events changes).

This module must never do IO, log, or let an orjson exception escape: malformed input is a
``ProviderStreamError`` (or the decoder's ``EventTooLargeError``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from ssechat.errors import ProviderStreamError
from ssechat.providers.base import Delta, Usage
from ssechat.sse import DEFAULT_MAX_EVENT_SIZE, Event, EventDecoder

__all__ = [
    "FrameSplitter",
    "ReadResult",
    "completion_deltas",
    "error_detail",
    "error_text",
    "frame_error",
    "parse_chunk",
    "read_deltas",
]

_MAX_FRAME = DEFAULT_MAX_EVENT_SIZE


class FrameSplitter:
    """Incremental frame splitter: ``feed`` body bytes, get back each frame completed so far.

    A frame is either the payload ``bytes`` of a lone ``data:`` line (its type is ``message``)
    or an ``Event`` from the decoder; joined and decoded, the two kinds give the same sequence
    of ``(type, data)`` as an ``EventDecoder`` fed the whole stream. An event larger than the
    decoder's default ``max_event_size`` raises its ``EventTooLargeError``.
    """

    __slots__ = ("_buffer", "_decoder", "_exact", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._decoder: EventDecoder | None = None
        self._exact = False  # the rest of the stream goes to the decoder as it comes
        self._started = False

    def feed(self, chunk: bytes) -> Sequence[bytes | Event]:
        if self._exact:
            return self._decoder_for_the_rest().feed(chunk)
        buffer = self._buffer
        if b"\r" in chunk or (not self._started and chunk[:1] == b"\xef"):
            # CR ends lines too, and a BOM is dropped only at the very start: neither can be cut
            # on LF LF, and a CR may pair with an LF of the next read. The decoder does it all.
            self._exact = True
            self._buffer = b""
            return self._decoder_for_the_rest().feed(buffer + chunk)
        self._started = True
        if buffer:
            search = len(buffer) - 1  # the buffer has no LF LF, but may end in one LF
            buffer += chunk
        else:
            search = 0
            buffer = chunk
        end = buffer.find(b"\n\n", search)
        frames: list[bytes | Event] = []
        start = 0
        while end >= 0:
            if (
                buffer.startswith(b"data:", start)
                and buffer.find(b"\n", start, end) < 0
                and end - start <= _MAX_FRAME
            ):
                frames.append(buffer[start + 6 if buffer[start + 5] == 32 else start + 5 : end])
            else:
                frames.extend(self._decoder_for_the_rest().feed(buffer[start : end + 2]))
            start = end + 2
            end = buffer.find(b"\n\n", start)
        self._buffer = rest = buffer[start:] if start else buffer
        if len(rest) > _MAX_FRAME:
            # No frame end in sight: let the decoder hold it, and judge its size exactly.
            self._exact = True
            self._buffer = b""
            frames.extend(self._decoder_for_the_rest().feed(rest))
        return frames

    def _decoder_for_the_rest(self) -> EventDecoder:
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = EventDecoder()
            if self._started:
                # Past the stream's start (and at a frame boundary): a BOM is no longer to be
                # dropped. A blank line here dispatches nothing and says so to the decoder.
                decoder.feed(b"\n")
        return decoder


class ReadResult(NamedTuple):
    """What one network read gave: its deltas (texts that came together joined), whether the
    stream's ``[DONE]`` came, and the error to raise once the deltas are handed on."""

    deltas: list[Delta]
    done: bool
    error: ProviderStreamError | None


def read_deltas(splitter: FrameSplitter, chunk: bytes) -> ReadResult:
    """Feed one read to ``splitter`` and parse the frames it completes (see the module)."""
    deltas: list[Delta] = []
    texts: list[str] = []
    done = False
    error: ProviderStreamError | None = None
    try:
        for frame in splitter.feed(chunk):
            if isinstance(frame, bytes):  # a lone data line: the common frame
                if frame == b"[DONE]":
                    done = True
                    break
                step = _fields(frame)
            else:
                data = frame.data
                if data == "[DONE]":
                    done = True
                    break
                if frame.type == "error":
                    raise ProviderStreamError(f"upstream stream error: {frame_error(data)}")
                step = _fields(data)
            if step is None:
                continue
            text, finish, usage = step
            if finish is None and usage is None:
                texts.append(text)
                continue
            if texts:
                deltas.append(Delta("".join(texts)))
                texts = []
            deltas.append(Delta(text, finish, usage))
    except ProviderStreamError as exc:
        error = exc
    if texts:
        deltas.append(Delta(texts[0] if len(texts) == 1 else "".join(texts)))
    return ReadResult(deltas, done, error)


def parse_chunk(data: bytes | str) -> Delta | None:
    """One ``chat.completion.chunk`` to a ``Delta``; None when it carries nothing for us."""
    step = _fields(data)
    return None if step is None else Delta(*step)


def _fields(data: bytes | str) -> tuple[str, str | None, Usage | None] | None:
    """``parse_chunk`` without the ``Delta``: (text, finish reason, usage), or None."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        if isinstance(data, bytes):
            # Invalid UTF-8: the decoder would have made it U+FFFD; agree with it.
            return _fields(data.decode("utf-8", "replace"))
        if not data.strip():
            return None  # an empty data line carries nothing
        raise ProviderStreamError(
            f"upstream sent a frame that is not JSON: {data[:100]!r}"
        ) from None
    if type(chunk) is not dict:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        raise ProviderStreamError(f"upstream sent a frame that is not an object: {text[:100]!r}")
    error = chunk.get("error")
    if error:
        raise ProviderStreamError(f"upstream stream error: {error_text(error)}")
    text = ""
    finish = None
    choices = chunk.get("choices")
    if choices and type(choices) is list:
        choice = choices[0]
        if type(choice) is dict and choice.get("index", 0) != 0:
            # n > 1: only choice 0 is the answer.
            choice = next((c for c in choices if type(c) is dict and c.get("index") == 0), None)
        if type(choice) is dict:
            delta = choice.get("delta")
            if delta and type(delta) is dict:
                content = delta.get("content")
                if content and type(content) is str:
                    text = content
                refusal = delta.get("refusal")
                if refusal and type(refusal) is str:
                    # A refusal is shown as the answer; both at once is not expected.
                    text = text + refusal if text else refusal
            reason = choice.get("finish_reason")
            if reason and type(reason) is str:
                finish = reason
    usage = _usage(chunk.get("usage"))
    if text or finish or usage:
        return text, finish, usage
    return None


def _usage(value: Any) -> Usage | None:
    if not value or type(value) is not dict:
        return None
    prompt = value.get("prompt_tokens")
    completion = value.get("completion_tokens")
    total = value.get("total_tokens")
    prompt = prompt if type(prompt) is int else 0
    completion = completion if type(completion) is int else 0
    total = total if type(total) is int else prompt + completion
    return Usage(prompt, completion, total)


def completion_deltas(body: bytes) -> list[Delta]:
    """A whole (non-streamed) ``chat.completion`` as deltas."""
    try:
        completion = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProviderStreamError("upstream answered with JSON that does not parse") from None
    if type(completion) is not dict:
        raise ProviderStreamError("upstream answered with JSON that is not an object")
    if completion.get("error"):
        raise ProviderStreamError(f"upstream error: {error_text(completion['error'])}")
    deltas: list[Delta] = []
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    if isinstance(choice, dict):
        message = choice.get("message")
        if isinstance(message, dict):
            text = message.get("content") or message.get("refusal")
            if isinstance(text, str) and text:
                deltas.append(Delta(text))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            deltas.append(Delta(finish_reason=reason))
    usage = _usage(completion.get("usage"))
    if usage is not None:
        deltas.append(Delta(usage=usage))
    return deltas


def error_detail(body: bytes) -> str:
    """The human part of an error body: ``error.message`` and the like, else nothing."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(value, dict):
        for key in ("error", "message", "detail"):
            if value.get(key):
                return error_text(value[key])
    return ""


def error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message[:1000]
    if isinstance(error, str):
        return error[:1000]
    return orjson.dumps(error).decode()[:1000]


def frame_error(data: str) -> str:
    """The message of an ``event: error`` frame's data."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return data[:1000] or "unknown error"
    if isinstance(value, dict) and value.get("error"):
        return error_text(value["error"])
    return error_text(value)
