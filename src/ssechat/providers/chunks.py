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

Reasoning (``delta.reasoning_content``, ``delta.reasoning``) goes to ``Delta.reasoning``, joined
per read like the text, reasoning before answer within a delta (a read where answer text comes
before more reasoning gives several deltas, so the order holds). A ``StreamState``, one per
stream, carries what spans reads: the ``ThinkSplitter`` for a leading ``<think>`` in the
content (dropped once it has decided there is none, so a plain answer pays one check per
read), and the tool calls being assembled from their ``tool_calls`` pieces, handed out whole
with the finish delta (or by ``StreamState.end`` when a server never finishes). Argument text
never reaches ``Delta.text``.

This module must never do IO, log, or let an orjson exception escape: malformed input is a
``ProviderStreamError`` (or the decoder's ``EventTooLargeError``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson

from ssechat.errors import ProviderStreamError
from ssechat.providers.base import Delta, ToolCall, Usage
from ssechat.providers.reasoning import ThinkSplitter
from ssechat.sse import DEFAULT_MAX_EVENT_SIZE, Event, EventDecoder

__all__ = [
    "FrameSplitter",
    "ReadResult",
    "StreamState",
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


class StreamState:
    """What one stream carries from read to read: the ``<think>`` splitter (None once it has
    decided there is no leading tag, or with no tag names) and the tool calls being assembled.
    """

    __slots__ = ("_calls", "_finished", "think")

    def __init__(self, reasoning_tags: str | Iterable[str] = ()) -> None:
        think = ThinkSplitter(reasoning_tags)
        self.think: ThinkSplitter | None = None if think.passthrough else think
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, argument pieces]
        self._finished = False

    def add_tool_pieces(self, pieces: list[Any]) -> None:
        """One delta's ``tool_calls`` list: each piece adds to the call at its ``index``."""
        calls = self._calls
        for piece in pieces:
            if type(piece) is not dict:
                continue
            call_id = piece.get("id")
            index = piece.get("index")
            if type(index) is not int:
                # A server that leaves out the index: a new id starts a call, else the last.
                known = any(call[0] == call_id for call in calls.values())
                if not calls or (call_id and not known):
                    index = max(calls, default=-1) + 1
                else:
                    index = max(calls)
            call = calls.get(index)
            if call is None:
                call = calls[index] = ["", "", []]
            if call_id and type(call_id) is str and not call[0]:
                call[0] = call_id
            function = piece.get("function")
            if type(function) is dict:
                name = function.get("name")
                if name and type(name) is str and not call[1]:
                    call[1] = name
                arguments = function.get("arguments")
                if arguments and type(arguments) is str:
                    call[2].append(arguments)

    def take_tool_calls(self) -> tuple[ToolCall, ...]:
        """The calls assembled so far, whole, in index order; each is given once."""
        if not self._calls:
            return ()
        calls = tuple(
            ToolCall(call[0] or f"call_{index}", call[1], "".join(call[2]))
            for index, call in sorted(self._calls.items())
        )
        self._calls = {}
        return calls

    def split(self, text: str) -> tuple[str, str]:
        """Content text through the ``<think>`` splitter: ``(reasoning, answer)``."""
        think = self.think
        if think is None:
            return "", text
        reasoning, answer = think.feed(text)
        if think.passthrough:
            self.think = None
        return reasoning, answer

    def finishing(
        self, text: str, finish: str | None, usage: Usage | None, reasoning: str
    ) -> Delta | None:
        """The delta of a chunk with a finish reason or usage: the content ends with a finish
        reason, so the splitter gives what it held, and the calls go with it."""
        think = self.think
        if think is not None:
            more, text = think.feed(text)
            reasoning += more
            if finish is not None:
                more, rest = think.end()
                self.think = None
                reasoning, text = reasoning + more, text + rest
            elif think.passthrough:
                self.think = None
        calls: tuple[ToolCall, ...] = ()
        if finish is not None:
            self._finished = True
            calls = self.take_tool_calls()
        if text or reasoning or finish or usage or calls:
            return Delta(text, finish, usage, reasoning, calls)
        return None

    def end(self, *, calls: bool = True) -> list[Delta]:
        """The stream is over: what the splitter held, and (``calls``) the calls no finish
        reason handed out, finishing with ``tool_calls`` if the server never finished."""
        deltas: list[Delta] = []
        think = self.think
        if think is not None:
            self.think = None
            reasoning, text = think.end()
            if reasoning or text:
                deltas.append(Delta(text, reasoning=reasoning))
        if calls and self._calls:
            finish = None if self._finished else "tool_calls"
            self._finished = True
            deltas.append(Delta(finish_reason=finish, tool_calls=self.take_tool_calls()))
        return deltas


def read_deltas(
    splitter: FrameSplitter, chunk: bytes, state: StreamState | None = None
) -> ReadResult:
    """Feed one read to ``splitter`` and parse the frames it completes (see the module). Without
    a ``state``, ``<think>`` tags are answer text and tool calls are not assembled."""
    deltas: list[Delta] = []
    texts: list[str] = []
    thoughts: list[str] = []
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
            text, finish, usage, reasoning, tools = step
            if tools is not None and state is not None:
                state.add_tool_pieces(tools)
            if finish is None and usage is None:
                if reasoning:
                    if texts:  # answer text came first: joining would put it after this
                        _join(deltas, thoughts, texts, state)
                        texts, thoughts = [], []
                    thoughts.append(reasoning)
                if text:
                    texts.append(text)
                continue
            if texts or thoughts:
                _join(deltas, thoughts, texts, state)
                texts, thoughts = [], []
            if state is None:
                deltas.append(Delta(text, finish, usage, reasoning))
            else:
                delta = state.finishing(text, finish, usage, reasoning)
                if delta is not None:
                    deltas.append(delta)
    except ProviderStreamError as exc:
        error = exc
    if texts and not thoughts and (state is None or state.think is None):
        # The plain answer's path: no reasoning, no splitter.
        deltas.append(Delta(texts[0] if len(texts) == 1 else "".join(texts)))
    elif texts or thoughts:
        _join(deltas, thoughts, texts, state)
    return ReadResult(deltas, done, error)


def _join(
    deltas: list[Delta], thoughts: list[str], texts: list[str], state: StreamState | None
) -> None:
    """Append one delta for the reasoning and answer texts that came together, if not empty."""
    reasoning = "".join(thoughts)
    text = "".join(texts)
    if state is not None and state.think is not None:
        more, text = state.split(text)
        reasoning += more
    if text or reasoning:
        deltas.append(Delta(text, reasoning=reasoning))


def parse_chunk(data: bytes | str) -> Delta | None:
    """One ``chat.completion.chunk`` to a ``Delta``; None when it carries nothing for us. (Tool
    call pieces need a ``StreamState`` to be assembled: ``read_deltas``.)"""
    step = _fields(data)
    if step is None:
        return None
    text, finish, usage, reasoning, _ = step
    if text or finish or usage or reasoning:
        return Delta(text, finish, usage, reasoning)
    return None


_Step = tuple[str, str | None, Usage | None, str, list[Any] | None]


def _fields(data: bytes | str) -> _Step | None:
    """``parse_chunk`` without the ``Delta``: (text, finish reason, usage, reasoning, the
    ``tool_calls`` pieces), or None."""
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
    reasoning = ""
    tools = None
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
                # A plain token's delta is {"content": …} alone: nothing else to look for.
                if not text or len(delta) > 1:
                    refusal = delta.get("refusal")
                    if refusal and type(refusal) is str:
                        # A refusal is shown as the answer; both at once is not expected.
                        text = text + refusal if text else refusal
                    # DeepSeek, llama.cpp: reasoning_content; vLLM, OpenRouter, Ollama,
                    # Groq: reasoning. One of them: some servers send both, the same text.
                    thought = delta.get("reasoning_content") or delta.get("reasoning")
                    if thought and type(thought) is str:
                        reasoning = thought
                    pieces = delta.get("tool_calls")
                    if pieces and type(pieces) is list:
                        tools = pieces
            reason = choice.get("finish_reason")
            if reason and type(reason) is str:
                finish = reason
    usage = _usage(chunk.get("usage"))
    if text or finish or usage or reasoning or tools:
        return text, finish, usage, reasoning, tools
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
    details = value.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if type(details) is dict else None
    if reasoning is None:
        reasoning = value.get("reasoning_tokens")  # OpenRouter also puts it at the top
    # Only a count above 0 says anything: plain OpenAI models report 0 on every answer.
    reasoning = reasoning if type(reasoning) is int and reasoning > 0 else None
    return Usage(prompt, completion, total, reasoning)


def completion_deltas(body: bytes, reasoning_tags: str | Iterable[str] = ()) -> list[Delta]:
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
    state = StreamState(reasoning_tags)
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    finish: str | None = None
    if isinstance(choice, dict):
        message = choice.get("message")
        if isinstance(message, dict):
            thought = message.get("reasoning_content") or message.get("reasoning")
            reasoning = thought if isinstance(thought, str) else ""
            text = message.get("content") or message.get("refusal")
            text = text if isinstance(text, str) else ""
            more, text = state.split(text)
            reasoning += more
            if text or reasoning:
                deltas.append(Delta(text, reasoning=reasoning))
            pieces = message.get("tool_calls")
            if isinstance(pieces, list):
                # A whole call has the pieces' shape without the index: one call per item.
                state.add_tool_pieces(
                    [{**p, "index": i} for i, p in enumerate(pieces) if isinstance(p, dict)]
                )
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            finish = reason
    deltas.extend(state.end(calls=False))
    calls = state.take_tool_calls()
    if finish or calls:
        deltas.append(Delta(finish_reason=finish or "tool_calls", tool_calls=calls))
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
