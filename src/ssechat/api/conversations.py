"""Routes for conversations and their messages (the tree), and for regenerating an answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.responses import Response

from ssechat.api.deps import generation_response, get_service
from ssechat.api.schemas import (
    ConversationCreate,
    ConversationPatch,
    GenerateOptions,
    MessageCreate,
)
from ssechat.api.service import ChatService, params_of

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["conversations"])
Service = Annotated[ChatService, Depends(get_service)]


@router.post("/conversations", status_code=201)
async def create_conversation(body: ConversationCreate, service: Service) -> dict[str, Any]:
    if body.system_prompt is not None:
        service.check_content(body.system_prompt, "system_prompt")
    model = service.resolve_model(body.model, None) if body.model else None
    conversation = await service.store.create_conversation(
        title=body.title, model=model, system_prompt=body.system_prompt
    )
    return conversation.as_dict()


@router.get("/conversations")
async def list_conversations(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    conversations, next_cursor = await service.store.list_conversations(limit=limit, cursor=cursor)
    return {"conversations": [c.as_dict() for c in conversations], "next_cursor": next_cursor}


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, service: Service) -> dict[str, Any]:
    return await service.conversation_with_messages(conversation_id)


@router.patch("/conversations/{conversation_id}")
async def update_conversation(
    conversation_id: str, body: ConversationPatch, service: Service
) -> dict[str, Any]:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if changes.get("system_prompt") is not None:
        service.check_content(changes["system_prompt"], "system_prompt")
    if changes.get("model") is not None:
        service.resolve_model(changes["model"], None)
    await service.store.update_conversation(conversation_id, **changes)
    return await service.conversation_with_messages(conversation_id)


@router.delete("/conversations/{conversation_id}", status_code=204)
async def delete_conversation(conversation_id: str, service: Service) -> Response:
    await service.store.get_conversation(conversation_id)
    await service.cancel_conversation_runs(conversation_id)
    await service.store.delete_conversation(conversation_id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=202,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the run's events"}},
)
async def send_message(
    conversation_id: str, body: MessageCreate, request: Request, service: Service
) -> Response:
    started = await service.send(
        conversation_id,
        body.content,
        parent_id=body.parent_id,
        parent_given="parent_id" in body.model_fields_set,
        params=params_of(body.temperature, body.max_tokens),
        model=body.model,
    )
    return generation_response(request, service, started)


@router.post(
    "/messages/{message_id}/regenerate",
    status_code=202,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the run's events"}},
)
async def regenerate(
    message_id: str,
    request: Request,
    service: Service,
    body: Annotated[GenerateOptions | None, Body()] = None,
) -> Response:
    options = body or GenerateOptions()
    started = await service.regenerate(
        message_id, params=params_of(options.temperature, options.max_tokens), model=options.model
    )
    return generation_response(request, service, started)
