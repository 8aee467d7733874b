"""The fake upstream's reasoning and tool-call answers: the model names, frames shaped as the
real recordings of each shape, and what the provider reads from them over a real socket."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ssechat.fake_upstream import FakeUpstream, Scenario, parse_model
from ssechat.fake_upstream.answers import generated_frames
from ssechat.fake_upstream.wire import (
    generated_thoughts,
    generated_tokens,
    tool_call_arguments,
)
from ssechat.providers import ChatMessage, Delta, GenerationParams, OpenAIProvider
from ssechat.providers.chunks import completion_deltas

from .fixtures import OPENAI_STREAMS, SHARED

REASONING = SHARED / "reasoning-streams"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def shape(value: Any) -> Any:
    """The JSON structure of a value: keys and types, not contents."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def recorded_deltas(path: Path) -> list[dict[str, Any]]:
    deltas = []
    for frame in path.read_text("utf-8").split("\n\n"):
        frame = frame.strip()
        if frame.startswith("data: {"):
            for choice in json.loads(frame[6:]).get("choices") or []:
                deltas.append(choice["delta"])
    return deltas


def fake_deltas(scenario: Scenario) -> list[dict[str, Any]]:
    chunks = [
        json.loads(frame[6:])
        for frame, _ in generated_frames(scenario, {**BODY, "model": "x"}, "c1")
        if frame.startswith(b"data: {")
    ]
    return [choice["delta"] for chunk in chunks for choice in chunk["choices"]]


def test_model_names() -> None:
    assert parse_model("fake-reason-tag-3-4@20") == Scenario(
        mode="reason", reasoning_shape="tag", reasoning_tokens=3, tokens=4, rate=20.0
    )
    assert parse_model("fake-reason-field-0-1") == Scenario(
        mode="reason", reasoning_shape="field", reasoning_tokens=0, tokens=1
    )
    assert parse_model("fake-tools-3") == Scenario(
        mode="tools", tool_calls=3, finish_reason="tool_calls"
    )
    assert parse_model("fake-tools") == Scenario(mode="tools", finish_reason="tool_calls")
    for bad in ("fake-reason-json-1-2", "fake-reason-tag-1", "fake-reason-tag-x-2", "fake-tools-y"):
        with pytest.raises(ValueError, match="fake model"):
            parse_model(bad)


@pytest.mark.parametrize(
    ("shape_name", "recording", "key"),
    [
        ("content", "deepseek-reasoner-reasoning-content", "reasoning_content"),
        ("field", "groq-gptoss-reasoning-tool-call", "reasoning"),
        ("field", "openrouter-claude-reasoning", "reasoning"),
    ],
)
def test_reasoning_deltas_have_a_recordings_shape(
    shape_name: str, recording: str, key: str
) -> None:
    real = [shape(d) for d in recorded_deltas(REASONING / f"{recording}.sse") if d.get(key)]
    fake = [
        shape(d)
        for d in fake_deltas(
            Scenario(mode="reason", reasoning_shape=shape_name, reasoning_tokens=3)
        )  # type: ignore[arg-type]
        if d.get(key)
    ]
    assert len(fake) == 3
    # Every key the fake sends, with its type, is in the recording's deltas (which may add
    # their own, such as Groq's "channel").
    for delta in fake:
        assert any(delta.items() <= r.items() for r in real), (delta, real[0])


def test_tag_reasoning_is_content_as_in_a_recording() -> None:
    real = recorded_deltas(REASONING / "together-deepseek-r1-think-in-content.sse")
    fake = fake_deltas(Scenario(mode="reason", reasoning_shape="tag", reasoning_tokens=3))
    assert fake[1]["content"].startswith("<think>")
    assert real[0]["content"].startswith("<think>")
    assert shape(fake[1]).items() <= shape(real[0]).items()
    assert any("</think>" in (d.get("content") or "") for d in fake)


def test_tool_call_pieces_have_the_recordings_shape() -> None:
    real = [d for d in recorded_deltas(OPENAI_STREAMS / "tool-call-d.sse") if d.get("tool_calls")]
    fake = [d for d in fake_deltas(Scenario(mode="tools", tool_calls=2)) if d.get("tool_calls")]
    assert shape(fake[0]) == shape(real[0])  # index, id, type, function {name, arguments}
    assert shape(fake[1]) == shape(real[1])  # index, function {arguments}
    assert len([d for d in fake if "id" in d["tool_calls"][0]]) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("shape_name", ["content", "field", "tag"])
@pytest.mark.parametrize("stream", [True, False])
async def test_the_provider_reads_each_shape(
    anyio_backend: str, shape_name: str, stream: bool
) -> None:
    async with FakeUpstream() as upstream:
        got = await collect(upstream.base_url, f"fake-reason-{shape_name}-7-5+split-4", stream)
    assert "".join(d.reasoning for d in got) == "".join(generated_thoughts(7))
    assert "".join(d.text for d in got) == "".join(generated_tokens(5))
    assert [d.usage.reasoning_tokens for d in got if d.usage] == [7]


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [True, False])
async def test_the_provider_reads_the_tool_calls(anyio_backend: str, stream: bool) -> None:
    async with FakeUpstream() as upstream:
        got = await collect(upstream.base_url, "fake-tools-3+chop-5", stream)
    calls = [c.as_dict() for d in got for c in d.tool_calls]
    assert calls == [
        {"id": f"call_fake_{i}", "name": "get_weather", "arguments": tool_call_arguments(i)}
        for i in range(3)
    ]
    assert [json.loads(c["arguments"])["days"] for c in calls] == [1, 2, 3]
    assert "".join(d.text for d in got) == ""
    assert [d.finish_reason for d in got if d.finish_reason] == ["tool_calls"]


async def collect(base_url: str, model: str, stream: bool) -> list[Delta]:
    if not stream:
        # "stream": false: the fake's whole chat.completion, read by the provider's reader of
        # whole completions.
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{base_url}/chat/completions", json={**BODY, "model": model, "stream": False}
            )
        return completion_deltas(response.content, "think,thinking")
    provider = OpenAIProvider(base_url=base_url, max_retries=0, idle_timeout=5.0)
    try:
        messages = [ChatMessage("user", "hi")]
        return [d async for d in provider.stream(messages, model, GenerationParams())]
    finally:
        await provider.aclose()
