"""Stateless one-shot streams in the tutorial's own format, plus models and health.

``/api/chat`` sends ``data: <text>`` frames, a text holding newlines as several ``data:`` lines
(so ``EventSource``'s ``event.data`` is exactly the text), then ``data: [DONE]``. Only the answer:
a reasoning model's thinking is sent too, as ``event: reasoning`` frames (the same shape), only
when asked (``?reasoning=1``, or ``"reasoning": true`` in the POST body), so that a plain
``onmessage`` handler shows the answer alone. Nothing is stored. An upstream failure arrives as
``event: error`` with JSON data, which a plain ``onmessage`` handler never mistakes for text.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ssechat.api.deps import CurrentUser, Service, event_stream, event_stream_doc
from ssechat.api.errors import error_responses
from ssechat.api.schemas import ChatRequest, Health, ModelList
from ssechat.errors import InvalidRequestError
from ssechat.providers.base import ChatMessage
from ssechat.responses import EventStreamResponse

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["chat"])
STREAM_DOC = {
    200: event_stream_doc(
        "the answer: message events holding its text (with reasoning asked for, reasoning "
        "events holding the model's thinking before it), an error event ({code, message, "
        "retryable}) on a failure, then a message [DONE]",
        ("message", "reasoning", "error"),
        ids=False,
    ),
    **error_responses(400, 401, 403, 413, 422, 429, stream=True),
}


@router.get("/health")
async def health(service: Service) -> Health:
    return service.health()


@router.get("/models", responses=error_responses(401))
async def models(service: Service, user: CurrentUser) -> ModelList:
    return await service.models()


@router.get("/chat", response_class=EventStreamResponse, responses=STREAM_DOC)
async def chat_get(
    request: Request,
    service: Service,
    user: CurrentUser,
    message: Annotated[str, Query(min_length=1)],
    model: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    reasoning: Annotated[
        bool, Query(description="also send the model's thinking, as event: reasoning frames")
    ] = False,
) -> EventStreamResponse:
    if not message.strip():
        raise InvalidRequestError("message must not be empty")
    frames = await service.one_shot(
        [ChatMessage(role="user", content=message)], model, owner=user.id, reasoning=reasoning
    )
    return event_stream(request, frames, user=user)


@router.post("/chat", response_class=EventStreamResponse, responses=STREAM_DOC)
async def chat_post(
    body: ChatRequest, request: Request, service: Service, user: CurrentUser
) -> EventStreamResponse:
    messages = [ChatMessage(role=m.role, content=m.content) for m in body.messages]
    frames = await service.one_shot(messages, body.model, owner=user.id, reasoning=body.reasoning)
    return event_stream(request, frames, user=user)
