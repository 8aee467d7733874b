"""The provider interface: what a model backend must offer the rest of ssechat.

A provider turns a list of chat messages into an async iterator of ``Delta`` values. Failures are
``ssechat.errors.ProviderError`` subclasses, never bare httpx or JSON exceptions. This module must
never do IO itself.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

__all__ = ["ChatMessage", "Delta", "GenerationParams", "Provider", "Role", "Usage"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of a generation: some text, and/or the finish reason, and/or the usage.

    ``finish_reason`` is the upstream's (``stop``, ``length``, ``content_filter``, ``tool_calls``,
    ``function_call``); the usage usually arrives in a delta of its own after it.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class GenerationParams:
    temperature: float | None = None
    max_tokens: int | None = None


@runtime_checkable
class Provider(Protocol):
    """A model backend. ``stream`` is an async generator: closing it closes the upstream."""

    name: str

    def stream(
        self, messages: Sequence[ChatMessage], model: str, params: GenerationParams
    ) -> AsyncGenerator[Delta, None]: ...

    async def list_models(self) -> list[str]: ...

    async def aclose(self) -> None: ...
