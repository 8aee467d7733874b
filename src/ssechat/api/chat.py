"""Stateless one-shot streams in the tutorial's own format, plus models and health.

``/api/chat`` sends ``data: <text>`` frames, a text holding newlines as several ``data:`` lines
(so ``EventSource``'s ``event.data`` is exactly the text), then ``data: [DONE]``. Nothing is
stored. An upstream failure arrives as ``event: error`` with JSON data, which a plain
``onmessage`` handler never mistakes for text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ssechat import __version__
from ssechat.api.deps import get_service
from ssechat.api.schemas import ChatRequest
from ssechat.api.service import ChatService
from ssechat.errors import InvalidRequestError, SSEChatError, error_data
from ssechat.providers.base import ChatMessage, GenerationParams, Provider
from ssechat.responses import EventStreamResponse
from ssechat.sse import encode, json_data

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["chat"])
Service = Annotated[ChatService, Depends(get_service)]
DONE = encode("[DONE]")
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "the answer, as data frames"}
}


@router.get("/health")
async def health(service: Service) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "default_model": service.providers.default_model,
        "demo": service.providers.upstream is None,
    }


@router.get("/models")
async def models(service: Service) -> dict[str, Any]:
    return {"models": await service.providers.models(), "default": service.providers.default_model}


async def _one_shot(
    provider: Provider, messages: Sequence[ChatMessage], model: str
) -> AsyncIterator[bytes]:
    try:
        stream = provider.stream(messages, model, GenerationParams())
        async with aclosing(stream):  # a client that leaves closes the upstream request
            async for delta in stream:
                if delta.text:
                    yield encode(delta.text)
    except SSEChatError as exc:
        yield encode(json_data(error_data(exc)), event="error")
    yield DONE


def _stream(service: ChatService, messages: list[ChatMessage], model: str | None) -> Any:
    for message in messages:
        service.check_content(message.content)
    if not any(m.role == "user" for m in messages):
        raise InvalidRequestError("messages must hold at least one user message")
    model_name = service.resolve_model(model, None)
    provider = service.providers.resolve(model_name)
    return EventStreamResponse(
        _one_shot(provider, messages, model_name), heartbeat=service.settings.heartbeat
    )


@router.get("/chat", response_class=EventStreamResponse, responses=STREAM_DOC)
async def chat_get(
    service: Service,
    message: Annotated[str, Query(min_length=1)],
    model: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> EventStreamResponse:
    if not message.strip():
        raise InvalidRequestError("message must not be empty")
    response: EventStreamResponse = _stream(
        service, [ChatMessage(role="user", content=message)], model
    )
    return response


@router.post("/chat", response_class=EventStreamResponse, responses=STREAM_DOC)
async def chat_post(body: ChatRequest, service: Service) -> EventStreamResponse:
    messages = [ChatMessage(role=m.role, content=m.content) for m in body.messages]
    response: EventStreamResponse = _stream(service, messages, body.model)
    return response
