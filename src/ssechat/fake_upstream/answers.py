"""What the fake upstream answers a chat request, and the pace it streams it at.

The answer's frames come from a scenario: generated tokens (``tokens``, ``text``, ``echo``,
truncated by ``max_tokens``), tool calls (``tools``), a scripted tool turn read off the request
(``agent``: ``agent_turn``) or a recording replayed byte for byte (``Replays``). ``stream``
writes them as a chunked ``text/event-stream``, paced by deadlines from the stream's start, and
asks the answer's ``StreamFaults`` at each position; ``complete`` writes the ``stream: false``
form. ``Clock`` is the time the pacing and the stalls follow: the event loop's by default, a
test's own to watch them without timing them.

This module never reads a request or records a connection (the server does); it never decides a
fault (``faults`` does).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from ssechat.fake_upstream import http11, wire
from ssechat.fake_upstream.faults import Sleep, StreamFaults
from ssechat.fake_upstream.scenario import Scenario

__all__ = [
    "AgentCall",
    "AgentTurn",
    "Clock",
    "Frames",
    "Replays",
    "agent_turn",
    "answer_tokens",
    "complete",
    "generated_frames",
    "models_body",
    "reasoned_tokens",
    "stream",
]

# An answer's frames, each with whether it is paced (the tokens, or a replay's every frame).
Frames = Iterator[tuple[bytes, bool]]


class Clock(Protocol):
    """The time pacing and stalls follow: ``time()`` in seconds, and ``sleep``."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class Replays:
    """The recordings of a fixtures directory, read once each, as frames."""

    def __init__(self, fixtures_dir: Path | None) -> None:
        self.fixtures_dir = fixtures_dir
        self._frames: dict[str, list[bytes]] = {}

    def frames(self, name: str) -> list[bytes] | None:
        """The frames of the recording ``name`` (``.sse`` optional), None if there is none."""
        frames = self._frames.get(name)
        if frames is None:
            stem = name.removesuffix(".sse")
            if self.fixtures_dir is None or not stem or "/" in stem or "\\" in stem:
                return None
            path = self.fixtures_dir / f"{stem}.sse"
            try:
                frames = wire.split_frames(path.read_bytes())
            except OSError:
                return None
            self._frames[name] = frames
        return frames

    def names(self) -> list[str]:
        if self.fixtures_dir is None or not self.fixtures_dir.is_dir():
            return []
        return [p.stem for p in self.fixtures_dir.glob("*.sse")]


def models_body(replays: Replays) -> bytes:
    """``GET /v1/models``: a few fake names and one per recording, sorted."""
    ids = [
        "fake-agent",
        "fake-echo",
        "fake-tokens-20",
        *(f"fake-replay-{name}" for name in replays.names()),
    ]
    data = [{"id": i, "object": "model", "created": 0, "owned_by": "fake"} for i in ids]
    return orjson.dumps({"object": "list", "data": sorted(data, key=lambda m: m["id"])})


def answer_tokens(scenario: Scenario, body: dict[str, Any]) -> tuple[list[str], str, int]:
    """The answer's tokens, its finish reason and the prompt's size, for generated modes."""
    messages = body.get("messages")
    if scenario.mode == "echo":
        tokens = wire.word_tokens(wire.last_user_text(messages))
    elif scenario.text is not None:
        tokens = wire.word_tokens(scenario.text)
    else:
        tokens = list(wire.generated_tokens(scenario.tokens))
    tokens, finish = _limited(tokens, scenario.finish_reason, body)
    return tokens, finish, wire.count_words(messages)


def reasoned_tokens(
    scenario: Scenario, body: dict[str, Any]
) -> tuple[list[str], list[str], str, int]:
    """The ``reason`` mode's reasoning tokens, answer tokens, finish reason and prompt size;
    ``max_tokens`` counts both (the reasoning first, as a model spends it)."""
    thoughts = list(wire.generated_thoughts(scenario.reasoning_tokens))
    tokens = list(wire.generated_tokens(scenario.tokens))
    finish = scenario.finish_reason
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0:
        if limit < len(thoughts) + len(tokens):
            finish = "length"
        thoughts, tokens = thoughts[:limit], tokens[: max(0, limit - len(thoughts))]
    return thoughts, tokens, finish, wire.count_words(body.get("messages"))


@dataclass(frozen=True, slots=True)
class AgentCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class AgentTurn:
    """What the ``agent`` mode answers a request: tool calls, or (when there are none) text."""

    calls: tuple[AgentCall, ...] = ()
    tokens: tuple[str, ...] = ()


NO_TOOLS_TEXT = "The fake agent was offered no tools."


def agent_turn(body: dict[str, Any]) -> AgentTurn:
    """The ``agent`` mode's answer to ``body`` (see ``Scenario``). Call ids are random, so that
    the calls of two turns of one conversation never share one."""
    messages = body.get("messages")
    if wire.last_role(messages) == "tool":
        said = " | ".join(wire.trailing_tool_texts(messages))
        return AgentTurn(tokens=tuple(wire.word_tokens(f"Tool said: {said}")))
    offered = wire.offered_functions(body.get("tools"))
    if not offered:
        return AgentTurn(tokens=tuple(wire.word_tokens(NO_TOOLS_TEXT)))
    asked = wire.last_user_text(messages)
    script = _scripted_calls(asked)
    if script is None:
        script = [(offered[0], orjson.dumps({"text": asked}).decode())]
    calls = tuple(
        AgentCall(f"call_{i}_{secrets.token_hex(8)}", _offered_name(name, offered), arguments)
        for i, (name, arguments) in enumerate(script)
    )
    return AgentTurn(calls=calls)


def _scripted_calls(text: str) -> list[tuple[str, str]] | None:
    """The (name, arguments) of a ``{"calls": [...]}`` user message; None for any other text.
    Arguments given as a string are sent as they are (a test may want them malformed)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        script = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    calls = script.get("calls") if isinstance(script, dict) else None
    if not isinstance(calls, list) or not calls:
        return None
    out: list[tuple[str, str]] = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            return None
        arguments = call.get("arguments", {})
        out.append(
            (
                call["name"],
                arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode(),
            )
        )
    return out


def _offered_name(name: str, offered: list[str]) -> str:
    # A script names a tool as the user knows it ("echo"); the model's function is
    # "<server>__echo". A name offered under neither form is called as it is: an unknown call.
    if name in offered:
        return name
    return next((n for n in offered if n.endswith(f"__{name}")), name)


def _limited(tokens: list[str], finish: str, body: dict[str, Any]) -> tuple[list[str], str]:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(tokens):
        return tokens[:limit], "length"
    return tokens, finish


def generated_frames(scenario: Scenario, body: dict[str, Any], completion_id: str) -> Frames:
    """A generated answer's frames: the role chunk, one per token (or tool call piece), finish,
    usage?, ``[DONE]``."""
    chunks = wire.ChunkWriter(completion_id, body["model"])
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    thoughts: list[str] = []
    turn = agent_turn(body) if scenario.mode == "agent" else None
    if turn is not None and turn.calls:
        # As OpenAI sends it: the first call's first piece rides in the role chunk.
        prompt, finish, count = wire.count_words(body.get("messages")), "tool_calls", 0
        for index, call in enumerate(turn.calls):
            pieces = wire.tool_call_pieces(
                index, call_id=call.id, name=call.name, arguments=call.arguments
            )
            if index == 0:
                yield chunks.role_with_tool_call(pieces[0]), False
                pieces = pieces[1:]
            for piece in pieces:
                count += 1
                yield chunks.tool_call(index, piece), True
        yield chunks.finish(finish), False
        if include_usage:  # the usage counts the pieces
            yield chunks.usage(prompt, count), False
        yield wire.DONE_FRAME, False
        return
    yield chunks.role(), False
    if turn is not None:
        tokens, finish = _limited(list(turn.tokens), scenario.finish_reason, body)
        prompt = wire.count_words(body.get("messages"))
        for token in tokens:
            yield chunks.content(token), True
    elif scenario.mode == "tools":
        prompt, finish = wire.count_words(body.get("messages")), scenario.finish_reason
        count = 0
        for index in range(scenario.tool_calls):
            for piece in wire.tool_call_pieces(index):
                count += 1
                yield chunks.tool_call(index, piece), True
        tokens = [""] * count  # the usage counts the pieces
    elif scenario.mode == "reason":
        thoughts, tokens, finish, prompt = reasoned_tokens(scenario, body)
        shape = scenario.reasoning_shape
        if shape == "tag":
            # As llama.cpp sends it: the tags are tokens of the content like any other.
            yield chunks.content("<think>\n"), True
            for thought in thoughts:
                yield chunks.content(thought), True
            yield chunks.content("</think>\n\n"), True
        else:
            for thought in thoughts:
                yield chunks.reasoning(thought, shape), True
        for token in tokens:
            yield chunks.content(token), True
    else:
        tokens, finish, prompt = answer_tokens(scenario, body)
        for token in tokens:
            yield chunks.content(token), True
    yield chunks.finish(finish), False
    if include_usage:
        yield chunks.usage(prompt, len(thoughts) + len(tokens), len(thoughts)), False
    yield wire.DONE_FRAME, False


async def complete(
    writer: asyncio.StreamWriter,
    body: dict[str, Any],
    scenario: Scenario,
    completion_id: str,
    replay: list[bytes] | None,
    faults: StreamFaults,
    keep_alive: bool,
) -> bool:
    """``stream: false``: honours stall and reset (before answering), not the other faults;
    return whether the connection may stay open."""
    if await faults.before_completion():
        return False
    extra: dict[str, Any] | None = None
    turn = agent_turn(body) if scenario.mode == "agent" else None
    if replay is not None:
        text, finish, usage = wire.replay_summary(replay)
    elif scenario.mode == "reason":
        thoughts, tokens, finish, prompt = reasoned_tokens(scenario, body)
        text, thought = "".join(tokens), "".join(thoughts)
        if scenario.reasoning_shape == "tag":
            text = f"<think>\n{thought}</think>\n\n{text}"
        else:
            key = "reasoning_content" if scenario.reasoning_shape == "content" else "reasoning"
            extra = {key: thought}
        usage = wire.usage_dict(prompt, len(thoughts) + len(tokens), len(thoughts))
    elif scenario.mode == "tools":
        text, finish = "", scenario.finish_reason
        calls = [
            {
                "id": f"call_fake_{i}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": wire.tool_call_arguments(i)},
            }
            for i in range(scenario.tool_calls)
        ]
        extra = {"content": None, "tool_calls": calls}
        usage = wire.usage_dict(wire.count_words(body.get("messages")), scenario.tool_calls)
    elif turn is not None and turn.calls:
        text, finish = "", "tool_calls"
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in turn.calls
        ]
        extra = {"content": None, "tool_calls": calls}
        usage = wire.usage_dict(wire.count_words(body.get("messages")), len(calls))
    else:
        if turn is not None:
            tokens, finish = _limited(list(turn.tokens), scenario.finish_reason, body)
            prompt = wire.count_words(body.get("messages"))
        else:
            tokens, finish, prompt = answer_tokens(scenario, body)
        text = "".join(tokens)
        usage = wire.usage_dict(prompt, len(tokens))
    payload = wire.completion_body(completion_id, body["model"], text, finish, usage, extra)
    await http11.send_json(writer, 200, payload, keep_alive)
    return keep_alive


async def stream(
    writer: asyncio.StreamWriter,
    frames: Frames,
    *,
    lead: int,
    faults: StreamFaults,
    clock: Clock | None,
    request_id: str,
    keep_alive: bool,
) -> bool:
    """Stream ``frames`` (the first ``lead`` of them before position 0); return whether the
    connection may stay open."""
    headers = [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("transfer-encoding", "chunked"),
        ("cache-control", "no-cache"),
        ("x-request-id", request_id),
        ("connection", "keep-alive" if keep_alive else "close"),
    ]
    writer.write(wire.http_head(200, headers))
    scenario = faults.scenario
    rng = random.Random(scenario.split_seed) if scenario.split_seed is not None else None
    chop, omit_done, interval = scenario.chop, scenario.omit_done, scenario.interval
    now: Callable[[], float]
    sleep: Sleep
    if clock is None:
        now, sleep = asyncio.get_running_loop().time, asyncio.sleep
    else:
        now, sleep = clock.time, clock.sleep
    fault_at = faults.positions
    # Deadlines from the start, so a late wake-up shortens the next wait: the pace holds.
    next_at = now()
    sent = 0
    for frame, paced in frames:
        if sent - lead in fault_at:
            end = await faults.run(sent - lead, final=False)
            if end is not None:
                return end
        if omit_done and wire.is_done(frame):
            continue
        if paced and interval:
            next_at += interval
            delay = next_at - now()
            if delay > 0:
                await sleep(delay)
        await http11.write_frame(writer, frame, rng, chop)
        sent += 1
    end = await faults.run(sent - lead, final=True)
    if end is not None:
        return end
    writer.write(wire.CHUNKED_END)
    await writer.drain()
    return keep_alive
