"""The OpenAI chat-completions wire format, as the fake upstream writes it: pure bytes builders.

Chunks have the recordings' shape and key order (``id, object, created, model,
system_fingerprint, choices[{index, delta, logprobs, finish_reason}]``, then a usage chunk with
``choices: []``, then ``data: [DONE]``). A ``ChunkWriter`` renders the constant part of a
stream's chunks once, so a token costs one JSON string escape and a concatenation: the fake must
stay cheap at thousands of tokens per second. This module never does IO.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson

__all__ = [
    "DONE_FRAME",
    "ChunkWriter",
    "chunked",
    "completion_body",
    "count_words",
    "error_body",
    "error_frame",
    "generated_thoughts",
    "generated_tokens",
    "http_head",
    "is_done",
    "last_role",
    "last_user_text",
    "offered_functions",
    "replay_summary",
    "split_frames",
    "tool_call_arguments",
    "tool_call_pieces",
    "trailing_tool_texts",
    "usage_dict",
    "word_tokens",
]

DONE_FRAME = b"data: [DONE]\n\n"
CHUNKED_END = b"0\r\n\r\n"

# The generated answer cycles through these words; "naïve" and "20 °C" put multi-byte UTF-8 on
# the wire so that split writes can cut inside a character.
_PARAGRAPH = (
    "Streaming keeps a naïve reader waiting less: each token travels as its own frame, "
    "and the page paints it at once, whether the answer is about the weather (20 °C) "
    "or about code."
)
_WORDS = _PARAGRAPH.split()
# The reasoning of the ``reason`` mode: other words than the answer's, so a test sees which is
# which; a "<" and an "é" put a tag's first byte and multi-byte UTF-8 inside it.
_THOUGHT = (
    "Hmm, the user wants a short answer. Let me weigh it: a < b holds, the café is near, "
    "so the reply can be brief and plain."
)
_THOUGHTS = _THOUGHT.split()
_CITIES = ("Paris", "Zürich", "Lagos", "Lima", "Osaka", "Perth")
_PIECE = re.compile(r'[{}":, ]+|[^{}":, ]+')

_FRAME_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_WORD = re.compile(r"\S+\s*|\s+")


class ChunkWriter:
    """Builds the ``data: {...}\\n\\n`` frames of one streamed completion."""

    __slots__ = ("_head", "_tail")

    def __init__(self, completion_id: str, model: str, created: int | None = None) -> None:
        created = int(time.time()) if created is None else created
        self._head = (
            b'data: {"id":'
            + orjson.dumps(completion_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(created).encode()
            + b',"model":'
            + orjson.dumps(model)
            + b',"system_fingerprint":"fp_fake","choices":['
        )
        self._tail = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def role(self) -> bytes:
        return (
            self._head
            + b'{"index":0,"delta":{"role":"assistant","content":"","refusal":null}'
            + self._tail
        )

    def content(self, text: str) -> bytes:
        return (
            self._head + b'{"index":0,"delta":{"content":' + orjson.dumps(text) + b"}" + self._tail
        )

    def reasoning(self, text: str, shape: str) -> bytes:
        """A reasoning token as DeepSeek (``content``) or vLLM/OpenRouter (``field``) send it."""
        if shape == "content":
            delta = b'{"content":null,"reasoning_content":' + orjson.dumps(text) + b"}"
        else:
            delta = b'{"reasoning":' + orjson.dumps(text) + b"}"
        return self._head + b'{"index":0,"delta":' + delta + self._tail

    def role_with_tool_call(self, piece: dict[str, Any]) -> bytes:
        """The first chunk of a tool-calling answer as OpenAI sends it today: the role, a null
        content and the first call's first piece (``tool_call_pieces``) in one delta."""
        call = orjson.dumps([{"index": 0, **piece}])
        return (
            self._head
            + b'{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":'
            + call
            + b',"refusal":null}'
            + self._tail
        )

    def tool_call(self, index: int, piece: dict[str, Any]) -> bytes:
        """One piece of a streamed tool call (``tool_call_pieces``), as OpenAI sends it."""
        call = orjson.dumps([{"index": index, **piece}])
        return self._head + b'{"index":0,"delta":{"tool_calls":' + call + b"}" + self._tail

    def finish(self, reason: str) -> bytes:
        return (
            self._head
            + b'{"index":0,"delta":{},"logprobs":null,"finish_reason":'
            + orjson.dumps(reason)
            + b"}]}\n\n"
        )

    def usage(self, prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> bytes:
        usage = usage_dict(prompt_tokens, completion_tokens, reasoning_tokens)
        return self._head + b'],"usage":' + orjson.dumps(usage) + b"}\n\n"


def usage_dict(
    prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    }


def tool_call_arguments(index: int) -> str:
    """The JSON arguments of the ``tools`` mode's call ``index``."""
    city = _CITIES[index % len(_CITIES)]
    return orjson.dumps({"city": city, "unit": "celsius", "days": index + 1}).decode()


def tool_call_pieces(
    index: int,
    *,
    call_id: str | None = None,
    name: str = "get_weather",
    arguments: str | None = None,
) -> list[dict[str, Any]]:
    """A call as OpenAI streams it: id, type and name with empty arguments first, then the
    arguments in pieces (``{"``, ``city``, ``":"`` …). By default the ``tools`` mode's call
    ``index``; the ``agent`` mode gives its own id, name and arguments."""
    first = {
        "id": f"call_fake_{index}" if call_id is None else call_id,
        "type": "function",
        "function": {"name": name, "arguments": ""},
    }
    text = tool_call_arguments(index) if arguments is None else arguments
    rest = [{"function": {"arguments": p}} for p in _PIECE.findall(text)]
    return [first, *rest]


def offered_functions(tools: Any) -> list[str]:
    """The function names of a request's ``tools``, in order (malformed entries skipped)."""
    names: list[str] = []
    if isinstance(tools, list):
        for tool in tools:
            function = tool.get("function") if isinstance(tool, Mapping) else None
            name = function.get("name") if isinstance(function, Mapping) else None
            if isinstance(name, str):
                names.append(name)
    return names


def last_role(messages: Any) -> str | None:
    if isinstance(messages, list) and messages and isinstance(messages[-1], Mapping):
        role = messages[-1].get("role")
        return role if isinstance(role, str) else None
    return None


def trailing_tool_texts(messages: Any) -> list[str]:
    """The contents of the ``tool`` messages that end a request, in order."""
    texts: list[str] = []
    if isinstance(messages, list):
        for message in reversed(messages):
            if not isinstance(message, Mapping) or message.get("role") != "tool":
                break
            texts.append(_text_of(message))
    texts.reverse()
    return texts


def error_frame(message: str, error_type: str = "server_error") -> bytes:
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_body(status: int, message: str | None) -> bytes:
    """An OpenAI-style JSON error body for an HTTP error status."""
    error_type, code = "invalid_request_error", None
    if status == 401:
        code = "invalid_api_key"
    elif status == 404:
        code = "model_not_found"
    elif status == 429:
        error_type, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        error_type = "server_error"
    if message is None:
        message = f"fake upstream: HTTP {status} {_reason(status)}"
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return orjson.dumps(payload)


def http_head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    """Status line and headers, ending with the blank line."""
    lines = [f"HTTP/1.1 {status} {_reason(status)}\r\n"]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def chunked(piece: bytes) -> bytes:
    """One HTTP/1.1 chunk carrying ``piece`` (which must not be empty)."""
    return b"%x\r\n%b\r\n" % (len(piece), piece)


def word_tokens(text: str) -> list[str]:
    """``text`` as tokens: each word with the whitespace after it (leading whitespace alone)."""
    return _WORD.findall(text)


def generated_tokens(count: int) -> Iterator[str]:
    """The deterministic text of the ``tokens`` mode, token by token (lazy: it may be long)."""
    words = _WORDS
    for i in range(count):
        word = words[i % len(words)]
        yield word if i == 0 else " " + word


def generated_thoughts(count: int) -> Iterator[str]:
    """The deterministic reasoning of the ``reason`` mode, token by token."""
    words = _THOUGHTS
    for i in range(count):
        word = words[i % len(words)]
        yield word if i == 0 else " " + word


def count_words(messages: Any) -> int:
    """A stand-in for prompt tokens: the words of every message's text."""
    if not isinstance(messages, list):
        return 0
    return sum(len(_text_of(m).split()) for m in messages if isinstance(m, Mapping))


def last_user_text(messages: Any) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return _text_of(message)
    return ""


def _text_of(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # the multi-part form: [{"type": "text", "text": ...}, ...]
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def split_frames(raw: bytes) -> list[bytes]:
    """A recording cut after each blank line; joined again they give ``raw`` byte for byte."""
    frames: list[bytes] = []
    start = 0
    for match in _FRAME_END.finditer(raw):
        frames.append(raw[start : match.end()])
        start = match.end()
    if start < len(raw):
        frames.append(raw[start:])
    return frames


def is_done(frame: bytes) -> bool:
    return frame.strip() == b"data: [DONE]"


def replay_summary(frames: Sequence[bytes]) -> tuple[str, str | None, dict[str, Any] | None]:
    """Choice 0's text, its finish reason and the usage of a recording (for ``stream: false``)."""
    parts: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] | None = None
    for frame in frames:
        line = frame.strip()
        if not line.startswith(b"data:") or is_done(frame):
            continue
        chunk = orjson.loads(line[5:])
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            parts.append(delta.get("content") or delta.get("refusal") or "")
            finish = choice.get("finish_reason") or finish
    return "".join(parts), finish, usage


def completion_body(
    completion_id: str,
    model: str,
    text: str,
    finish_reason: str | None,
    usage: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """A non-streamed ``chat.completion`` object; ``extra`` adds to (or replaces) its message's
    fields (``reasoning_content``, ``tool_calls``…)."""
    message = {"role": "assistant", "content": text, "refusal": None, **(extra or {})}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [choice],
    }
    if usage is not None:
        body["usage"] = dict(usage)
    return orjson.dumps(body)
