"""The provider interface: what a model backend must offer the rest of ssechat.

A provider turns a list of chat messages into an async iterator of ``Delta`` values. Failures are
``ssechat.errors.ProviderError`` subclasses, never bare httpx or JSON exceptions. This module must
never do IO itself.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "ChatMessage",
    "Delta",
    "GenerationParams",
    "Provider",
    "RequestRole",
    "Role",
    "ToolCall",
    "Usage",
]

Role = Literal["system", "user", "assistant"]
"""The roles of a conversation's messages (what users and the API send)."""
RequestRole = Literal["system", "user", "assistant", "tool"]
"""The roles of a request's messages: those, and ``tool`` (a tool call's result)."""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    """``completion_tokens_details.reasoning_tokens``, when the upstream sends it."""

    def as_dict(self) -> dict[str, int]:
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens is not None:
            usage["reasoning_tokens"] = self.reasoning_tokens
        return usage


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the model asked for, assembled from its streamed pieces."""

    id: str
    name: str
    arguments: str
    """The arguments as the model wrote them: JSON text, whole (not parsed or checked here)."""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a request. An assistant message may carry the ``tool_calls`` its model
    made (its ``content`` may then be empty); a ``tool`` message answers the call
    ``tool_call_id`` with the tool's result as its ``content``."""

    role: RequestRole
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of a generation: some answer text and/or reasoning text, and/or the finish
    reason (with the assembled tool calls, if it is ``tool_calls``), and/or the usage.

    ``finish_reason`` is the upstream's (``stop``, ``length``, ``content_filter``, ``tool_calls``,
    ``function_call``); the usage usually arrives in a delta of its own after it. ``reasoning`` is
    the model's thinking (``delta.reasoning_content``, ``delta.reasoning`` or a leading
    ``<think>…</think>`` of the content), never part of ``text``. ``tool_calls`` are whole calls,
    given once, in the delta that finishes the stream.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float | None = None
    max_tokens: int | None = None
    tools: tuple[Mapping[str, Any], ...] = ()
    """The tools the model may call, in OpenAI's format (``{"type": "function", "function":
    {"name", "description", "parameters"}}``); none: the request carries no ``tools``."""
    tool_choice: str | None = None
    """``"none"``: the model must answer in text (sent only with ``tools``)."""


@runtime_checkable
class Provider(Protocol):
    """A model backend. ``stream`` is an async generator: closing it closes the upstream."""

    name: str

    def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]: ...

    async def list_models(self) -> list[str]: ...

    async def aclose(self) -> None: ...
