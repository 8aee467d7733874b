"""The Server-Sent Events wire protocol, pure and sans-IO: bytes in, events out.

Encoding (``encode``, ``encode_comment``, ``json_data``) turns values into ``text/event-stream``
frames; ``EventDecoder`` turns a byte stream, fed in chunks of any size, back into events exactly as
the HTML Living Standard's "parsing an event stream" prescribes (section 9.2.6).

This module must never import anything else from ssechat, open a socket, or touch an event loop:
it is the base every other module builds on, and it is usable on its own as a library.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "Event",
    "EventDecoder",
    "EventTooLargeError",
    "encode",
    "encode_comment",
    "json_data",
]

# CRLF, lone CR and lone LF end a line; nothing else does (unlike str.splitlines, which also
# splits on VT, FF, U+0085, U+2028… that the event-stream grammar treats as ordinary characters).
_LINE_END = re.compile(r"\r\n|\r|\n")

DEFAULT_MAX_EVENT_SIZE = 1 << 20
"""Characters one event (its pending line plus its data buffer) may hold by default: 1 Mi."""


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def encode(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as UTF-8 bytes, ending with the blank line that dispatches it.

    ``data`` holding CR, LF or CRLF becomes several ``data:`` lines, so no character of the
    payload can end the event early or forge another field; the receiver joins them with LF.
    ``event`` and ``id`` may not hold CR or LF, ``id`` may not hold NUL (a receiver would ignore
    it), and ``retry`` must be a non-negative int: anything else raises ``ValueError``.
    """
    parts: list[str] = []
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"retry must be a non-negative int, not {retry!r}")
        parts.append(f"retry: {retry}\n")
    if id is not None:
        _check_single_line("id", id)
        if "\0" in id:
            raise ValueError("id must not contain NUL")
        parts.append(f"id: {id}\n")
    if event is not None:
        _check_single_line("event", event)
        parts.append(f"event: {event}\n")
    if data is not None:
        if "\n" in data or "\r" in data:
            parts.extend(f"data: {line}\n" for line in _LINE_END.split(data))
        else:
            parts.append(f"data: {data}\n")
    if not parts:
        raise ValueError("an event needs at least one of data, event, id or retry")
    parts.append("\n")
    return "".join(parts).encode()


def encode_comment(text: str = "") -> bytes:
    """Encode a comment (a heartbeat, say): one ``:`` line per line of ``text``.

    A blank line follows, so that clients which split the stream on blank lines see a frame of
    its own; for a spec-following parser it dispatches nothing.
    """
    lines = _LINE_END.split(text)
    return ("".join(f": {line}\n" if line else ":\n" for line in lines) + "\n").encode()


# One encoder for every call: json.dumps with non-default options builds a new one each time,
# which costs more than the encoding itself on the per-token path.
_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def json_data(value: Any) -> str:
    """Serialize ``value`` as compact JSON for a ``data`` field.

    ``ensure_ascii`` escapes every non-ASCII character, so U+2028 and U+2029 (line terminators
    in older JavaScript) never travel raw, and CR or LF can only appear escaped: the result is
    always a single ``data:`` line.
    """
    return _JSON.encode(value)


def _check_single_line(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"{name} must not contain CR or LF")


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched event, as ``MessageEvent`` would show it to a page."""

    type: str = "message"
    data: str = ""
    last_event_id: str = ""


class EventTooLargeError(ValueError):
    """An event (or a single line) grew past the decoder's ``max_event_size``."""


class EventDecoder:
    """Incremental event-stream parser: ``feed`` bytes as they arrive, get events back.

    Chunk boundaries may fall anywhere: inside a UTF-8 character, between CR and LF, inside a
    field name. Invalid UTF-8 becomes U+FFFD. ``last_event_id`` and ``retry`` outlive ``close()``
    the way they outlive a reconnection in a browser; everything else starts afresh, so one
    decoder can read successive connections of the same source.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_data_size",
        "_event_type",
        "_line",
        "_line_size",
        "_skip_lf",
        "_utf8",
        "last_event_id",
        "max_event_size",
        "retry",
    )

    def __init__(self, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if max_event_size <= 0:
            raise ValueError("max_event_size must be positive")
        self.max_event_size = max_event_size
        self.last_event_id = ""
        self.retry: int | None = None
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._at_start = True  # no character seen yet: a BOM here is dropped
        self._skip_lf = False  # the last chunk ended in CR: a leading LF belongs to it
        self._line: list[str] = []  # pieces of the line still waiting for its end
        self._line_size = 0
        self._data: list[str] = []  # one entry per data line of the pending event
        self._data_size = 0
        self._event_type = ""

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse the next chunk of the stream; return the events it completed, in order."""
        return self._feed_text(self._utf8.decode(chunk))

    def close(self) -> list[Event]:
        """End of stream: an event still missing its blank line is discarded, per the spec."""
        events = self._feed_text(self._utf8.decode(b"", final=True))
        self._reset_stream()
        return events

    def _feed_text(self, text: str) -> list[Event]:
        if not text:
            return []
        if self._at_start:
            self._at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if not text:
            return []

        lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
        # The last piece has no line end yet; if the text ended in CR, an LF may still follow.
        tail = lines.pop()
        if not tail and text[-1] == "\r":
            self._skip_lf = True

        events: list[Event] = []
        if lines:
            if self._line:
                self._line.append(lines[0])
                lines[0] = "".join(self._line)
                self._line.clear()
                self._line_size = 0
            for line in lines:
                if len(line) > self.max_event_size:
                    self._too_large()
                event = self._process_line(line)
                if event is not None:
                    events.append(event)
        if tail:
            self._line.append(tail)
            self._line_size += len(tail)
            if self._line_size + self._data_size > self.max_event_size:
                self._too_large()
        return events

    def _process_line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_size:
                self._too_large()
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        if not self._data:
            self._event_type = ""
            return None
        event = Event(self._event_type or "message", "\n".join(self._data), self.last_event_id)
        self._data = []
        self._data_size = 0
        self._event_type = ""
        return event

    def _too_large(self) -> None:
        size = self._line_size + self._data_size
        self._line.clear()
        self._line_size = 0
        self._data = []
        self._data_size = 0
        self._event_type = ""
        raise EventTooLargeError(
            f"event exceeds max_event_size={self.max_event_size} characters"
            f" ({size} buffered); the stream is not a well-behaved event stream"
        )
