"""Request bodies of the HTTP API, validated by pydantic; extra fields are refused.

Limits that depend on settings (the content size) are checked by the routes, not here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChatMessageIn",
    "ChatRequest",
    "ConversationCreate",
    "ConversationPatch",
    "GenerateOptions",
    "MessageCreate",
]

Name = Field(default=None, max_length=200)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ConversationCreate(_Strict):
    title: str | None = Name
    model: str | None = Field(default=None, min_length=1, max_length=200)
    system_prompt: str | None = None


class ConversationPatch(ConversationCreate):
    current_leaf_id: str | None = Field(default=None, max_length=64)


class GenerateOptions(_Strict):
    model: str | None = Field(default=None, min_length=1, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)


class MessageCreate(GenerateOptions):
    content: str
    parent_id: str | None = Field(default=None, max_length=64)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be empty")
        return value


class ChatMessageIn(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Strict):
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=1000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
