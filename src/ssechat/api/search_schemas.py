"""The response bodies of ``GET /api/search``: a page of hits, each with its snippet as plain
text parts. This module must never hold HTML or markup of any kind: the UI marks the parts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ssechat.api.schemas import Timestamp, _Out

__all__ = ["SearchHitOut", "SearchPage", "SnippetPartOut"]


class SnippetPartOut(_Out):
    text: str = Field(description="plain text, never markup: show it as text")
    match: bool = Field(description="a matched word (the UI marks it)")


class SearchHitOut(_Out):
    conversation_id: str
    title: str | None
    updated_at: Timestamp = Field(description="the conversation's")
    message_id: str | None = Field(description="the matching message; null: the title matched")
    role: Literal["system", "user", "assistant"] | None = Field(
        description="the matching message's; null for a title"
    )
    snippet: list[SnippetPartOut] = Field(
        description="the text around the match, in order: joined, the snippet's plain text"
    )


class SearchPage(_Out):
    results: list[SearchHitOut] = Field(
        description="best first (the newest conversation first among equals)"
    )
    next_cursor: str | None = Field(description="pass it as cursor for the next page; null: last")
