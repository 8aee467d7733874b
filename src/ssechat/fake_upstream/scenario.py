"""What the fake upstream answers: the ``Scenario`` value and its compact model-name syntax.

A scenario is a frozen, hashable value, so the server can count how often it served each one
(``status_times``) whether it came from the queue, the default, or a model name. This module is
pure: it parses and describes, it never touches a socket or an event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["MODEL_PREFIX", "Mode", "ReasoningShape", "Scenario", "parse_model"]

MODEL_PREFIX = "fake-"

Mode = Literal["tokens", "echo", "replay", "reason", "tools", "agent"]
ReasoningShape = Literal["content", "field", "tag"]
_SHAPES = ("content", "field", "tag")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One way of answering ``POST /v1/chat/completions``.

    The answer (``mode``):

    - ``tokens``: ``tokens`` generated tokens (or the words of ``text`` when given);
    - ``echo``: the words of the last user message;
    - ``replay``: the recording ``replay`` (a file name in the fixtures directory, ``.sse``
      optional) sent byte for byte, frame by frame;
    - ``reason``: ``reasoning_tokens`` tokens of reasoning, then ``tokens`` answer tokens, the
      reasoning in the ``reasoning_shape``: ``content`` (``delta.reasoning_content``, as
      DeepSeek), ``field`` (``delta.reasoning``, as vLLM, OpenRouter, Groq) or ``tag`` (a
      leading ``<think>…</think>`` in ``delta.content``, as llama.cpp without a reasoning
      format); ``max_tokens`` counts both;
    - ``tools``: ``tool_calls`` calls, each streamed as a first piece (index, id, name) and its
      arguments in several pieces, then finish reason ``tool_calls`` (when made from a model
      name; ``finish_reason`` says it);
    - ``agent``: a scripted tool turn (``answers.agent_turn``). While the request's last message
      is not a ``tool`` message, it calls tools: the calls a last user message of the form
      ``{"calls": [{"name": N, "arguments": {...}}]}`` lists (N matched against the offered
      functions' names: exact, else the one ending in ``__N``, else N as it is), otherwise one
      call of the first offered tool with ``{"text": <the last user text>}``; no tools offered
      gives a text answer saying so. Once tool messages end the request, it answers "Tool said:
      " and their contents, joined by " | ".

    ``rate`` paces it in tokens (replay: frames) per second; 0 means as fast as possible.

    Faults. A "frame count" N counts the answer's tokens (generated modes; the leading role chunk
    is not counted) or the file's frames (replay). A fault whose N is never reached fires just
    before the body ends.

    - ``status``: answer this HTTP status with an OpenAI-style JSON error body, for the first
      ``status_times`` requests served by this scenario (``None``: every one), then succeed;
      ``retry_after`` / ``retry_after_ms`` add those headers, ``headers`` any others (for
      example ``("x-should-retry", "false")``);
    - ``error_after``: send ``data: {"error": {...}}`` after N frames and end the body (followed
      by ``data: [DONE]`` when ``done_after_error``);
    - ``reset_after``: after N frames, reset the connection (TCP RST);
    - ``stall_after``: after N frames, send nothing for ``stall_for`` seconds (``None``: until
      the client leaves or the server stops), then go on;
    - ``split_seed``: write each frame in pieces cut at seeded random offsets, each piece its
      own HTTP chunk, write and drain; ``chop``: pieces of exactly that many bytes;
    - ``omit_done``: never send ``data: [DONE]``.
    """

    mode: Mode = "tokens"
    tokens: int = 20
    rate: float = 0.0
    text: str | None = None
    replay: str | None = None
    finish_reason: str = "stop"
    status: int | None = None
    status_times: int | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    error_message: str | None = None
    error_after: int | None = None
    done_after_error: bool = False
    reset_after: int | None = None
    stall_after: int | None = None
    stall_for: float | None = None
    split_seed: int | None = None
    chop: int | None = None
    omit_done: bool = False
    reasoning_shape: ReasoningShape = "content"
    reasoning_tokens: int = 0
    tool_calls: int = 1

    def __post_init__(self) -> None:
        if self.mode == "replay" and not self.replay:
            raise ValueError("a replay scenario needs the name of a recording")
        if self.tokens < 0 or self.reasoning_tokens < 0 or self.tool_calls < 0:
            raise ValueError("token and call counts must be >= 0")
        if self.reasoning_shape not in _SHAPES:
            raise ValueError(f"reasoning shape must be one of {', '.join(_SHAPES)}")
        if not (self.rate >= 0):  # also rejects NaN
            raise ValueError("rate must be >= 0")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")
        if self.chop is not None and self.chop < 1:
            raise ValueError("chop must be >= 1")
        for name in ("error_after", "reset_after", "stall_after", "status_times"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def interval(self) -> float:
        """Seconds between two paced frames; 0 when unpaced."""
        return 0.0 if self.rate == 0 or math.isinf(self.rate) else 1.0 / self.rate


def parse_model(model: str) -> Scenario | None:
    """The scenario a ``fake-…`` model name asks for; ``None`` for any other name.

    Grammar (see the package docstring): ``fake-<answer>[@<rate>](+<fault>)*``. Raises
    ``ValueError`` with a readable message when the name starts with ``fake-`` but is malformed.
    """
    if not model.startswith(MODEL_PREFIX):
        return None
    answer, *faults = model[len(MODEL_PREFIX) :].split("+")
    answer, at, rate_text = answer.partition("@")
    fields: dict[str, object] = {}
    if at:
        fields["rate"] = _number(rate_text, model, "rate")
    kind, _, arg = answer.partition("-")
    if kind == "tokens":
        fields["mode"] = "tokens"
        if arg:
            fields["tokens"] = _int(arg, model, "token count")
    elif kind == "echo" and not arg:
        fields["mode"] = "echo"
    elif kind == "replay" and arg:
        fields["mode"] = "replay"
        fields["replay"] = arg
    elif kind == "reason" and arg.count("-") == 2 and arg.partition("-")[0] in _SHAPES:
        shape, thoughts, tokens = arg.split("-")
        fields["mode"] = "reason"
        fields["reasoning_shape"] = shape
        fields["reasoning_tokens"] = _int(thoughts, model, "reasoning token count")
        fields["tokens"] = _int(tokens, model, "answer token count")
    elif kind == "agent" and not arg:
        fields["mode"] = "agent"
    elif kind == "tools":
        fields["mode"] = "tools"
        fields["finish_reason"] = "tool_calls"
        if arg:
            fields["tool_calls"] = _int(arg, model, "tool call count")
    else:
        raise ValueError(
            f"fake model {model!r}: the answer must be tokens[-N], echo, replay-NAME,"
            " reason-{content|field|tag}-R-A, tools[-N] or agent"
        )
    for fault in faults:
        _parse_fault(fault, model, fields)
    try:
        return Scenario(**fields)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fake model {model!r}: {exc}") from None


def _parse_fault(fault: str, model: str, fields: dict[str, object]) -> None:
    name, _, arg = fault.partition("-")
    if name == "status":
        code, x, times = arg.partition("x")
        fields["status"] = _int(code, model, "status")
        if x:
            fields["status_times"] = _int(times, model, "status repeat count")
    elif name == "retry":
        _number(arg, model, "retry-after")
        fields["retry_after"] = arg
    elif name == "retryms":
        _number(arg, model, "retry-after-ms")
        fields["retry_after_ms"] = arg
    elif name in ("error", "errordone"):
        fields["error_after"] = _int(arg, model, "error position")
        fields["done_after_error"] = name == "errordone"
    elif name == "reset":
        fields["reset_after"] = _int(arg, model, "reset position")
    elif name == "stall":
        at, _, seconds = arg.partition("-")
        fields["stall_after"] = _int(at, model, "stall position")
        if seconds:
            fields["stall_for"] = _number(seconds, model, "stall duration")
    elif name == "split":
        fields["split_seed"] = _int(arg, model, "split seed")
    elif name == "chop":
        fields["chop"] = _int(arg, model, "chop size")
    elif name == "nodone" and not arg:
        fields["omit_done"] = True
    elif name == "finish" and arg:
        fields["finish_reason"] = arg
    else:
        raise ValueError(f"fake model {model!r}: unknown fault {fault!r}")


def _int(text: str, model: str, what: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"fake model {model!r}: {what} must be a whole number, not {text!r}")
    return int(text)


def _number(text: str, model: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value >= 0) or math.isinf(value):
        raise ValueError(f"fake model {model!r}: {what} must be a number >= 0, not {text!r}")
    return value
