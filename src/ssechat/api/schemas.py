"""The shapes of the HTTP API: request bodies and response bodies, as pydantic models.

Request bodies refuse extra fields; limits that depend on settings (the content size) are
checked by the service, not here. Response bodies are what the routes answer, so ``/docs`` and
the OpenAPI document (from which the web UI's types are generated) show every one of them;
their JSON is exactly the one the UI reads. Shared names (roles, statuses) come from the
modules that own them. This module must never hold logic beyond shapes and their limits.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ssechat.api.tool_schemas import Approval, ToolKey, ToolResultOut
from ssechat.providers.base import Role
from ssechat.runs import RunStatus

__all__ = [
    "ChatMessageIn",
    "ChatRequest",
    "Conversation",
    "ConversationCreate",
    "ConversationDetail",
    "ConversationPage",
    "ConversationPatch",
    "ErrorBody",
    "ErrorDetail",
    "ErrorInfo",
    "GenerateOptions",
    "GenerationAccepted",
    "Health",
    "Message",
    "MessageCreate",
    "MessageStatus",
    "ModelInfo",
    "ModelList",
    "RunState",
    "ToolCallOut",
    "Usage",
]

Name = Field(default=None, max_length=200)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


Tools = Field(
    default=None,
    max_length=128,
    description='the tools its model may call, as "<server>/<tool>" (none by default)',
)


class ConversationCreate(_Strict):
    title: str | None = Name
    model: str | None = Field(default=None, min_length=1, max_length=200)
    system_prompt: str | None = None
    tools: list[Annotated[str, ToolKey]] | None = Tools


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
    role: Role
    content: str


class ChatRequest(_Strict):
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=1000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    reasoning: bool = Field(
        default=False, description="also send the model's thinking, as event: reasoning frames"
    )


# --- response bodies ---------------------------------------------------------------------------

MessageStatus = Literal["streaming", "complete", "length", "stopped", "error", "interrupted"]
"""A message's status: ``ssechat.store.MESSAGE_STATUSES`` as a type (a test holds them equal)."""

Timestamp = Annotated[
    str,
    Field(
        description="ISO-8601 UTC with milliseconds and a Z, e.g. 2025-01-31T12:00:00.000Z",
        json_schema_extra={"format": "date-time"},
    ),
]


class _Out(BaseModel):
    """A response body: every field is always sent (null when empty), nothing else is."""

    model_config = ConfigDict(extra="forbid")


class Health(_Out):
    status: Literal["ok"]
    version: str
    default_model: str = Field(description="the model used when a request names none")
    demo: bool = Field(description="no upstream is configured: only the offline demo model")


class ModelInfo(_Out):
    id: str
    provider: str = Field(description="the provider that serves the model (openai, demo)")


class ModelList(_Out):
    models: list[ModelInfo] = Field(description="the upstream's models, the default, and demo")
    default: str


class Usage(_Out):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reasoning_tokens: int | None = Field(
        default=None,
        description="of the completion tokens, those spent reasoning, when the upstream says",
    )


class ToolCallOut(_Out):
    """A tool call the model made, assembled from its streamed pieces, and what became of it."""

    id: str
    name: str = Field(description="the function name the model called")
    arguments: str = Field(description="as the model wrote them: JSON text, not checked")
    server: str | None = Field(default=None, description="the MCP server (null: not offered)")
    tool: str | None = Field(default=None, description="the tool's name on that server")
    approval: Approval | None = Field(default=None)
    decision: Literal["approved", "denied", "expired"] | None = Field(
        default=None, description="for a call that asked: the user's decision"
    )
    offset: int | None = Field(
        default=None, description="the answer's length in code points when the call was made"
    )
    result: ToolResultOut | None = Field(default=None, description="null: no result (yet)")


class Conversation(_Out):
    id: str
    title: str | None = Field(description="null until the first answer names it")
    model: str | None
    system_prompt: str | None
    owner: str | None
    created_at: Timestamp
    updated_at: Timestamp
    current_leaf_id: str | None = Field(
        description="the message the conversation's view ends at: the newest, or one chosen"
    )
    tools: list[str] = Field(description='the tools its model may call ("<server>/<tool>")')


class ConversationPage(_Out):
    conversations: list[Conversation] = Field(description="most recently updated first")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null: last")


class Message(_Out):
    """One node of a conversation's tree; siblings (same parent) are regenerations or edits."""

    id: str
    conversation_id: str
    parent_id: str | None
    role: Role
    content: str = Field(description="while its run is live, the text so far")
    status: MessageStatus
    model: str | None
    finish_reason: str | None = Field(description="the upstream's (stop, length, …)")
    usage: Usage | None
    error: str | None = Field(description="why the run that wrote this answer failed")
    created_at: Timestamp
    updated_at: Timestamp
    reasoning: str | None = Field(
        description="the model's thinking before its answer (while its run is live, so far); "
        "never sent upstream again"
    )
    reasoning_seconds: float | None = Field(
        description="from the first reasoning token to the last (null while reasoning goes on)"
    )
    tool_calls: list[ToolCallOut] | None = Field(description="the tools the model asked for")
    run_id: str | None = Field(description="the live run writing this answer, to follow")


class ConversationDetail(Conversation):
    messages: list[Message] = Field(description="the whole tree, oldest first")


class ErrorInfo(_Out):
    """What an SSE ``error`` event carries, and a failed run's ``error``."""

    code: str
    message: str
    retryable: bool


class RunState(_Out):
    id: str
    conversation_id: str
    user_message_id: str
    message_id: str = Field(description="the answer the run writes")
    model: str
    status: RunStatus
    finish_reason: str | None
    usage: Usage | None
    error: ErrorInfo | None
    text: str = Field(description="the answer so far")
    last_event_id: int = Field(description="the id of the run's newest event")


class GenerationAccepted(_Out):
    """A run started; its events are at ``events_url`` (also in the Location header)."""

    run_id: str
    conversation_id: str
    user_message_id: str
    message_id: str
    model: str
    events_url: str


class ErrorDetail(_Out):
    code: str = Field(description="stable and machine-readable: not_found, conflict, …")
    message: str = Field(description="for people")


class ErrorBody(_Out):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail
