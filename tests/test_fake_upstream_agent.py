"""The fake upstream's ``agent`` mode: a turn that calls tools, then one that answers from them.

The calls are read through the real ``OpenAIProvider`` over a loopback socket; the frames are
read with plain httpx and compared, in structure, with real OpenAI recordings.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from ssechat.errors import ProviderStreamError
from ssechat.fake_upstream import FakeUpstream, Scenario, parse_model
from ssechat.providers import ChatMessage, Delta, GenerationParams, OpenAIProvider
from ssechat.providers.base import ToolCall
from ssechat.providers.chunks import completion_deltas

from .fake_upstream_support import payloads
from .fixtures import OPENAI_STREAMS

pytestmark = pytest.mark.anyio


def function(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object", "properties": {}}},
    }


TOOLS = (function("demo__echo"), function("demo__fail"), function("other__echo"))


@pytest.fixture
async def upstream(anyio_backend: str) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


async def run_turn(
    upstream: FakeUpstream,
    messages: Sequence[ChatMessage],
    tools: tuple[dict[str, Any], ...] = TOOLS,
    model: str = "fake-agent",
) -> list[Delta]:
    provider = OpenAIProvider(base_url=upstream.base_url, max_retries=0, idle_timeout=10.0)
    try:
        params = GenerationParams(tools=tools)
        return [d async for d in provider.stream(messages, model, params)]
    finally:
        await provider.aclose()


def calls_of(deltas: list[Delta]) -> list[ToolCall]:
    return [call for d in deltas for call in d.tool_calls]


def finishes(deltas: list[Delta]) -> list[str]:
    return [d.finish_reason for d in deltas if d.finish_reason]


def script(*calls: dict[str, Any]) -> str:
    return json.dumps({"calls": list(calls)})


# --- the model name -----------------------------------------------------------------------------


def test_model_name() -> None:
    assert parse_model("fake-agent") == Scenario(mode="agent")
    assert parse_model("fake-agent@20+chop-3") == Scenario(mode="agent", rate=20.0, chop=3)
    with pytest.raises(ValueError, match="agent"):
        parse_model("fake-agent-2")


async def test_the_models_list_offers_it(upstream: FakeUpstream) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{upstream.base_url}/models")
    assert "fake-agent" in [m["id"] for m in response.json()["data"]]


# --- the turn that calls tools ------------------------------------------------------------------


async def test_by_default_one_call_of_the_first_tool_with_the_question(
    upstream: FakeUpstream,
) -> None:
    got = await run_turn(upstream, [ChatMessage("user", "hello there")])
    [call] = calls_of(got)
    assert (call.name, call.arguments) == ("demo__echo", '{"text":"hello there"}')
    assert call.id.startswith("call_0_")
    assert finishes(got) == ["tool_calls"]
    assert "".join(d.text for d in got) == ""


async def test_a_scripted_question_makes_exactly_those_calls(upstream: FakeUpstream) -> None:
    asked = script(
        {"name": "echo", "arguments": {"text": "naïve 🔎"}},  # matched by its "__echo" ending
        {"name": "other__echo", "arguments": {}},  # an exact name wins
        {"name": "missing", "arguments": {"x": 1}},  # not offered: called as it is
        {"name": "fail", "arguments": '{"broken": '},  # text arguments go as they are
    )
    got = await run_turn(upstream, [ChatMessage("user", "first"), ChatMessage("user", asked)])
    calls = calls_of(got)
    assert [(c.name, c.arguments) for c in calls] == [
        ("demo__echo", '{"text":"naïve 🔎"}'),
        ("other__echo", "{}"),
        ("missing", '{"x":1}'),
        ("demo__fail", '{"broken": '),
    ]
    assert [c.id.split("_")[1] for c in calls] == ["0", "1", "2", "3"]
    assert len({c.id for c in calls}) == 4
    assert finishes(got) == ["tool_calls"]


async def test_call_ids_differ_between_requests(upstream: FakeUpstream) -> None:
    first = calls_of(await run_turn(upstream, [ChatMessage("user", "a")]))
    second = calls_of(await run_turn(upstream, [ChatMessage("user", "a")]))
    assert first[0].id != second[0].id


async def test_no_tools_offered_is_a_text_answer(upstream: FakeUpstream) -> None:
    got = await run_turn(upstream, [ChatMessage("user", script({"name": "echo"}))], tools=())
    assert calls_of(got) == []
    assert "no tools" in "".join(d.text for d in got)
    assert finishes(got) == ["stop"]


async def test_faults_apply_to_the_call_pieces(upstream: FakeUpstream) -> None:
    asked = script({"name": "echo", "arguments": {"text": "split me"}})
    # Written 5 bytes at a time: the calls still assemble whole.
    got = await run_turn(upstream, [ChatMessage("user", asked)], model="fake-agent+chop-5")
    assert [(c.name, c.arguments) for c in calls_of(got)] == [("demo__echo", '{"text":"split me"}')]
    # An error frame after two argument pieces ends the stream with the upstream's error.
    with pytest.raises(ProviderStreamError):
        await run_turn(upstream, [ChatMessage("user", asked)], model="fake-agent+error-2")


async def test_the_non_streamed_form_carries_the_calls(upstream: FakeUpstream) -> None:
    body = {
        "model": "fake-agent",
        "messages": [{"role": "user", "content": script({"name": "fail", "arguments": {}})}],
        "tools": list(TOOLS),
        "stream": False,
    }
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{upstream.base_url}/chat/completions", json=body)
    message = response.json()["choices"][0]["message"]
    assert message["content"] is None
    assert [c["function"] for c in message["tool_calls"]] == [
        {"name": "demo__fail", "arguments": "{}"}
    ]
    deltas = completion_deltas(response.content, ())
    assert [c.name for c in calls_of(deltas)] == ["demo__fail"]


# --- the frames have the recordings' shape ------------------------------------------------------


def shape(value: Any) -> Any:
    """The JSON structure of a value: keys in order, the types, and where the index sits (its
    value, for tool call pieces); not the contents."""
    if isinstance(value, dict):
        return [(k, v if k == "index" else shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def recorded(name: str) -> list[Any]:
    return payloads((OPENAI_STREAMS / f"{name}.sse").read_bytes())


async def test_the_tool_call_frames_have_the_shape_of_real_recordings(
    upstream: FakeUpstream,
) -> None:
    asked = script({"name": "echo", "arguments": {"city": "Paris"}}, {"name": "fail"})
    body = {
        "model": "fake-agent",
        "messages": [{"role": "user", "content": asked}],
        "tools": list(TOOLS),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{upstream.base_url}/chat/completions", json=body)
    fake = payloads(response.content)
    assert fake[-1] == "[DONE]"
    first, *pieces, finish, usage = fake[:-1]

    # 2026 format (service_tier, obfuscation, usage: null are extra keys OpenAI added since).
    now = recorded("gpt4o-mini-tool-then-answer-1")
    # 2024 format: exactly the fake's chunk keys; tool-call-d has two calls.
    then_a, then_d = recorded("tool-call-a"), recorded("tool-call-d")
    for chunk in (first, *pieces, finish):
        assert list(chunk) == list(then_a[0])
        assert [k for k in now[0] if k in chunk] == list(chunk)
    # The role chunk carries the first call's first piece: id, type, name, empty arguments.
    assert shape(first["choices"]) == shape(now[0]["choices"]) == shape(then_a[0]["choices"])
    assert first["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == ""
    # Then argument pieces of call 0, the first piece of call 1 (its own frame, as in
    # tool-call-d), argument pieces of call 1.
    second_call = next(
        i for i, p in enumerate(pieces) if "id" in p["choices"][0]["delta"]["tool_calls"][0]
    )
    for piece in pieces[:second_call]:
        assert shape(piece["choices"]) == shape(now[1]["choices"])
    d_second = next(
        p
        for p in then_d[:-1]
        if p["choices"]
        and "id" in p["choices"][0]["delta"].get("tool_calls", [{}])[0]
        and p["choices"][0]["delta"]["tool_calls"][0]["index"] == 1
    )
    assert shape(pieces[second_call]["choices"]) == shape(d_second["choices"])
    assert (
        pieces[second_call]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == ""
    )
    d_later = then_d[then_d.index(d_second) + 1]
    for piece in pieces[second_call + 1 :]:
        assert shape(piece["choices"]) == shape(d_later["choices"])
    assert shape(finish) == shape(then_a[-3]) == [(k, v) for k, v in shape(now[-3]) if k in finish]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert usage["choices"] == []
    assert list(usage) == list(then_a[-2])
    assert set(usage["usage"]) <= set(now[-2]["usage"])
    # Put back together, the pieces are the scripted arguments, whole.
    arguments: dict[int, str] = {}
    for chunk in (first, *pieces):
        for call in chunk["choices"][0]["delta"]["tool_calls"]:
            arguments[call["index"]] = (
                arguments.get(call["index"], "") + call["function"]["arguments"]
            )
    assert arguments == {0: '{"city":"Paris"}', 1: "{}"}


# --- the turn that answers from the results -----------------------------------------------------


async def test_the_next_turn_answers_from_the_tool_messages(upstream: FakeUpstream) -> None:
    question = script({"name": "echo", "arguments": {"text": "ping"}}, {"name": "fail"})
    first = await run_turn(upstream, [ChatMessage("user", question)])
    calls = tuple(calls_of(first))
    assert [c.name for c in calls] == ["demo__echo", "demo__fail"]
    messages = [
        ChatMessage("user", question),
        ChatMessage("assistant", "", calls),
        ChatMessage("tool", "ping", tool_call_id=calls[0].id),
        ChatMessage("tool", "Error: it failed", tool_call_id=calls[1].id),
    ]
    second = await run_turn(upstream, messages)
    assert calls_of(second) == []
    assert "".join(d.text for d in second) == "Tool said: ping | Error: it failed"
    assert finishes(second) == ["stop"]
    # The upstream received the step as OpenAI expects it.
    sent = upstream.requests[-1].body
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent["messages"][1]["tool_calls"]] == [c.id for c in calls]
    # On the wire: the role chunk, then the text word by word, as any text answer.
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{upstream.base_url}/chat/completions", json=sent)
    deltas = [p["choices"][0]["delta"] for p in payloads(response.content)[:-1] if p["choices"]]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    words = [d["content"] for d in deltas[1:] if d]
    assert words == ["Tool ", "said: ", "ping ", "| ", "Error: ", "it ", "failed"]


async def test_only_the_trailing_tool_messages_are_used(upstream: FakeUpstream) -> None:
    step = (ToolCall("c1", "demo__echo", "{}"),)
    messages = [
        ChatMessage("user", "q1"),
        ChatMessage("assistant", "", step),
        ChatMessage("tool", "old result", tool_call_id="c1"),
        ChatMessage("assistant", "Answered."),
        ChatMessage("user", "q2"),
        ChatMessage("assistant", "Let me see.", (ToolCall("c2", "demo__echo", "{}"),)),
        ChatMessage("tool", "new result", tool_call_id="c2"),
    ]
    got = await run_turn(upstream, messages, model="fake-agent@1000")
    assert "".join(d.text for d in got) == "Tool said: new result"
    # A user question after tool messages starts a new round of calls.
    again = await run_turn(
        upstream, [*messages, ChatMessage("assistant", "ok"), ChatMessage("user", "more")]
    )
    assert [c.arguments for c in calls_of(again)] == ['{"text":"more"}']
