"""The request and response models of export and import (``api.transfer``).

``ExportDocument`` documents our export format, version 1 (the JSON Schema in
``ssechat/transfer/schema/`` is the format's reference; a test checks exports against both).
This module must never hold logic: shapes only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["ExportConversation", "ExportDocument", "ExportMessage", "ImportResult"]


class ExportMessage(BaseModel):
    id: str
    parent_id: str | None
    role: Literal["system", "user", "assistant"]
    content: str
    status: Literal["streaming", "complete", "length", "stopped", "error", "interrupted"]
    model: str | None
    finish_reason: str | None
    usage: dict[str, int] | None
    error: str | None
    reasoning: str | None
    reasoning_seconds: float | None
    tool_calls: list[dict[str, Any]] | None
    created_at: float = Field(description="Unix seconds (exact: they round-trip).")
    updated_at: float = Field(description="Unix seconds.")


class ExportConversation(BaseModel):
    id: str
    title: str | None
    model: str | None
    system_prompt: str | None
    tools: list[str]
    created_at: float = Field(description="Unix seconds.")
    updated_at: float = Field(description="Unix seconds.")
    current_leaf_id: str | None
    messages: list[ExportMessage] = Field(
        description="Every message of every branch, parents first."
    )


class ExportDocument(BaseModel):
    """Our lossless export, version 1; ``POST /api/import`` reads it back."""

    format: Literal["ssechat-export"]
    version: Literal[1]
    exported_at: float = Field(description="Unix seconds.")
    conversations: list[ExportConversation]


class ImportResult(BaseModel):
    imported: int = Field(description="How many conversations were written.")
    skipped: int = Field(description="How many were imported before (or are yours already).")
    conversations: list[str] = Field(description="The ids of the conversations written.")
