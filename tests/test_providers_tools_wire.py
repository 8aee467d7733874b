"""ssechat.providers.openai: the request body of a tool step, as the upstream receives it.

The body is read back from what the fake upstream recorded (``RecordedRequest.body``, its own
JSON parse of the bytes on the wire), never from the provider's internals.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ssechat.fake_upstream import FakeUpstream
from ssechat.providers import ChatMessage, GenerationParams, OpenAIProvider
from ssechat.providers.base import ToolCall

pytestmark = pytest.mark.anyio

TOOLS = (
    {
        "type": "function",
        "function": {
            "name": "files__read",
            "description": "Read a file",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
)


@pytest.fixture
async def upstream(anyio_backend: str) -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as fake:
        yield fake


async def sent_body(
    upstream: FakeUpstream, messages: list[ChatMessage], params: GenerationParams
) -> dict[str, Any]:
    provider = OpenAIProvider(base_url=upstream.base_url, max_retries=0, idle_timeout=10.0)
    try:
        async for _ in provider.stream(messages, "fake-tokens-2", params):
            pass
    finally:
        await provider.aclose()
    body = upstream.requests[-1].body
    assert isinstance(body, dict)
    return body


async def test_tool_steps_and_tools_are_sent_in_openai_format(upstream: FakeUpstream) -> None:
    messages = [
        ChatMessage("system", "be brief"),
        ChatMessage("user", "read a and b"),
        ChatMessage(
            "assistant",
            "Reading them.",
            (
                ToolCall("call_1", "files__read", '{"path":"a"}'),
                ToolCall("call_2", "files__read", '{"path": "b"}'),
            ),
        ),
        ChatMessage("tool", "contents of a", tool_call_id="call_1"),
        ChatMessage("tool", "Error: no such file b", tool_call_id="call_2"),
        # A step with no text before its call: content null, as OpenAI writes it.
        ChatMessage("assistant", "", (ToolCall("call_3", "files__read", "{}"),)),
        ChatMessage("tool", "", tool_call_id="call_3"),
        ChatMessage("assistant", "Done."),
        ChatMessage("user", "thanks"),
    ]
    body = await sent_body(upstream, messages, GenerationParams(tools=TOOLS))
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "read a and b"},
        {
            "role": "assistant",
            "content": "Reading them.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "files__read", "arguments": '{"path":"a"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "files__read", "arguments": '{"path": "b"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "contents of a"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: no such file b"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_3",
                    "type": "function",
                    "function": {"name": "files__read", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_3", "content": ""},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": "thanks"},
    ]
    assert body["tools"] == [dict(TOOLS[0])]
    # Arguments go as the model wrote them: text, never parsed and re-encoded.
    assert body["messages"][2]["tool_calls"][1]["function"]["arguments"] == '{"path": "b"}'


async def test_a_plain_request_is_unchanged(upstream: FakeUpstream) -> None:
    messages = [ChatMessage("user", "hi"), ChatMessage("assistant", ""), ChatMessage("user", "?")]
    body = await sent_body(upstream, messages, GenerationParams())
    assert "tools" not in body
    assert body["messages"] == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": ""},  # no tool_calls: the two keys as always
        {"role": "user", "content": "?"},
    ]
    assert list(body) == ["model", "messages", "stream", "stream_options"]


async def test_tools_given_as_read_only_mappings_are_sent(upstream: FakeUpstream) -> None:
    # The tools service may hand out read-only views of its schemas; orjson writes dicts only.
    frozen = types.MappingProxyType(
        {
            "type": "function",
            "function": types.MappingProxyType(
                {"name": "t__x", "parameters": {"type": "object", "properties": {}}}
            ),
        }
    )
    body = await sent_body(upstream, [ChatMessage("user", "x")], GenerationParams(tools=(frozen,)))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "t__x", "parameters": {"type": "object", "properties": {}}},
        }
    ]
