"""What a tool call answers, as the text the model (and the user's card) is given.

Text blocks are joined with a blank line; other blocks become short placeholders
(``[image: image/png]``, ``[resource: uri]``); ``structuredContent`` is sent as JSON when no
text came with it; the whole is capped at ``MAX_RESULT_CHARS``. Sans-IO.

This module must never do IO, nor pass a tool's binary data (images, blobs) on as text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mcp_types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
)

__all__ = ["MAX_RESULT_CHARS", "ToolOutcome", "cap", "outcome_of"]

# A tool's answer goes into the model's context and into the stored message: a runaway tool must
# not fill either.
MAX_RESULT_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """The result of one call as the model is told it."""

    content: str
    is_error: bool


def cap(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n\n[… {len(text) - limit} more characters cut]"


def outcome_of(result: CallToolResult) -> ToolOutcome:
    """A ``CallToolResult`` as text; an error result with nothing in it still says so."""
    parts: list[str] = []
    has_text = False
    for block in result.content:
        if isinstance(block, TextContent):
            has_text = True
            parts.append(block.text)
        elif isinstance(block, ImageContent):
            parts.append(f"[image: {block.mime_type}]")
        elif isinstance(block, AudioContent):
            parts.append(f"[audio: {block.mime_type}]")
        elif isinstance(block, ResourceLink):
            parts.append(f"[resource: {block.uri}]")
        elif isinstance(block, EmbeddedResource):
            resource = block.resource
            if isinstance(resource, BlobResourceContents):
                parts.append(f"[resource: {resource.uri}]")
            else:
                # A text resource is text the tool meant the model to read.
                has_text = True
                parts.append(f"[resource: {resource.uri}]\n{resource.text}")
    if not has_text and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    content = "\n\n".join(parts)
    if result.is_error and not content.strip():
        content = "The tool reported an error."
    return ToolOutcome(cap(content), bool(result.is_error))
