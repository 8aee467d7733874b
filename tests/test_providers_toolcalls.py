"""Tool-call streams: ``tool_calls`` pieces assembled into whole ``ToolCall``s, given once with
the finish, and none of their argument text in the answer.

The expected calls of each recording are assembled here the plain way (per ``index``: the first
id and name, the arguments concatenated), never by the code under test.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ssechat.fake_upstream import FakeUpstream
from ssechat.providers import ChatMessage, Delta, GenerationParams, OpenAIProvider, ToolCall
from ssechat.providers.chunks import completion_deltas

from .fixtures import OPENAI_STREAMS
from .test_providers_reasoning import (
    REASONING_STREAMS,
    choice0_deltas,
    random_cuts,
    recording_chunks,
    replay,
)

TOOL_RECORDINGS = sorted(
    [
        *OPENAI_STREAMS.glob("tool-call-*.sse"),
        *OPENAI_STREAMS.glob("gpt4o-mini-tool-then-answer-*.sse"),
        *(p for p in REASONING_STREAMS.glob("*.sse") if b'"tool_calls"' in p.read_bytes()),
    ]
)


def expected_calls(path: Path) -> list[dict[str, str]]:
    calls: dict[int, dict[str, str]] = {}
    for delta in choice0_deltas(recording_chunks(path)[0]):
        for piece in delta.get("tool_calls") or []:
            call = calls.setdefault(piece["index"], {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or piece.get("id") or ""
            function = piece.get("function") or {}
            call["name"] = call["name"] or function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def expected_answer(path: Path) -> str:
    return "".join(d.get("content") or "" for d in choice0_deltas(recording_chunks(path)[0]))


def calls_of(deltas: list[Delta]) -> list[dict[str, str]]:
    return [call.as_dict() for d in deltas for call in d.tool_calls]


def test_the_material_has_parallel_and_fragmented_calls() -> None:
    assert len(TOOL_RECORDINGS) >= 10
    counts = [len(expected_calls(p)) for p in TOOL_RECORDINGS]
    # One recording is the answer after the tool ran: no calls, a plain answer.
    assert max(counts) >= 2
    assert counts.count(0) == 1
    for path in TOOL_RECORDINGS:
        for call in expected_calls(path):
            assert call["id"]
            assert call["name"]
            assert call["arguments"]


@pytest.mark.parametrize("path", TOOL_RECORDINGS, ids=lambda p: p.stem)
def test_every_tool_call_recording_gives_exactly_its_calls(path: Path) -> None:
    data = path.read_bytes()
    calls = expected_calls(path)
    answer = expected_answer(path)
    rng = random.Random(path.stem)
    for pieces in [[data], *(random_cuts(data, rng) for _ in range(30))]:
        deltas, error = replay(pieces)
        assert error is None
        assert calls_of(deltas) == calls
        # Given once, with the first finish reason; none of the argument text is answer text.
        given = [d for d in deltas if d.tool_calls]
        assert len(given) == (1 if calls else 0)
        first_finish = next(d.finish_reason for d in deltas if d.finish_reason)
        assert all(d.finish_reason == first_finish for d in given)
        text = "".join(d.text for d in deltas)
        assert text == answer
        assert all(call["arguments"] not in text for call in calls)


@pytest.fixture
async def upstream(anyio_backend: str) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(fixtures_dir=OPENAI_STREAMS) as fake:
        yield fake


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path", [p for p in TOOL_RECORDINGS if p.parent == OPENAI_STREAMS], ids=lambda p: p.stem
)
async def test_tool_calls_through_the_provider(upstream: FakeUpstream, path: Path) -> None:
    provider = OpenAIProvider(base_url=upstream.base_url, max_retries=0, idle_timeout=5.0)
    try:
        messages = [ChatMessage("user", "hi")]
        model = f"fake-replay-{path.stem}+split-3"
        got = [d async for d in provider.stream(messages, model, GenerationParams())]
    finally:
        await provider.aclose()
    assert calls_of(got) == expected_calls(path)
    assert "".join(d.text for d in got) == expected_answer(path)


def tool_piece(index: int | None, **fields: Any) -> bytes:
    piece: dict[str, Any] = {"index": index, **fields} if index is not None else dict(fields)
    chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [piece]}}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def test_calls_without_a_finish_are_given_at_the_end() -> None:
    body = tool_piece(0, id="c1", function={"name": "f", "arguments": '{"a"'})
    body += tool_piece(0, function={"arguments": ": 1}"})
    deltas, _ = replay([body])
    assert deltas == [
        Delta(finish_reason="tool_calls", tool_calls=(ToolCall("c1", "f", '{"a": 1}'),))
    ]
    # [DONE] without a finish reason: the same.
    deltas, _ = replay([body + b"data: [DONE]\n\n"])
    assert calls_of(deltas) == [{"id": "c1", "name": "f", "arguments": '{"a": 1}'}]


def test_pieces_without_an_index_follow_their_ids() -> None:
    body = tool_piece(None, id="a", function={"name": "f", "arguments": "{"})
    body += tool_piece(None, function={"arguments": "}"})
    body += tool_piece(None, id="b", function={"name": "g", "arguments": "[]"})
    deltas, _ = replay([body])
    assert calls_of(deltas) == [
        {"id": "a", "name": "f", "arguments": "{}"},
        {"id": "b", "name": "g", "arguments": "[]"},
    ]


def test_a_whole_completion_with_tool_calls() -> None:
    call = {"id": "c9", "type": "function", "function": {"name": "f", "arguments": '{"x":2}'}}
    message = {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "c10"}]}
    body = orjson.dumps(
        {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    )
    deltas = completion_deltas(body)
    assert deltas == [
        Delta(
            finish_reason="tool_calls",
            tool_calls=(ToolCall("c9", "f", '{"x":2}'), ToolCall("c10", "f", '{"x":2}')),
        )
    ]
