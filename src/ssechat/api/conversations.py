"""Routes for conversations and their messages (the tree), and for regenerating an answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from ssechat.api.deps import (
    RUN_EVENTS,
    CurrentUser,
    Service,
    event_stream_doc,
    generation_response,
    json_answer,
)
from ssechat.api.errors import error_responses
from ssechat.api.schemas import (
    Conversation,
    ConversationCreate,
    ConversationDetail,
    ConversationPage,
    ConversationPatch,
    GenerateOptions,
    GenerationAccepted,
    MessageCreate,
)
from ssechat.api.service import params_of

__all__ = ["router"]

# Every route here needs credentials (401), and refuses a cross-site change (403).
router = APIRouter(prefix="/api", tags=["conversations"], responses=error_responses(401, 403))

# A generation answers 202 with where its events are, or (Accept: text/event-stream) the events.
GENERATION_DOC: dict[int | str, dict[str, Any]] = {
    200: event_stream_doc(
        "the run's events from the first: run (id 0), reasoning ({text}: the model's thinking, "
        "before its answer) and delta ({text}) in one id sequence, error ({code, message, "
        "retryable}) on a failure, tool_call ({id, name, arguments, server, tool, approval, "
        "offset}), tool_decision ({id, decision}) and tool_result ({id, content, is_error}) "
        "when the model uses tools, done ({status, finish_reason, usage, tool_calls?}) last; "
        "data is JSON",
        RUN_EVENTS,
        ids=True,
    )
}


@router.post("/conversations", status_code=201, responses=error_responses(400, 413, 422))
async def create_conversation(
    body: ConversationCreate, service: Service, user: CurrentUser
) -> Conversation:
    return await service.create_conversation(
        owner=user.id,
        title=body.title,
        model=body.model,
        system_prompt=body.system_prompt,
        tools=body.tools,
    )


@router.get("/conversations", responses=error_responses(400, 422))
async def list_conversations(
    service: Service,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ConversationPage:
    return await service.list_conversations(owner=user.id, limit=limit, cursor=cursor)


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    responses=error_responses(404, 422),
)
async def get_conversation(conversation_id: str, service: Service, user: CurrentUser) -> Response:
    return json_answer(await service.conversation(conversation_id, owner=user.id))


@router.patch(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    responses=error_responses(400, 404, 413, 422),
)
async def update_conversation(
    conversation_id: str, body: ConversationPatch, service: Service, user: CurrentUser
) -> Response:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return json_answer(await service.update_conversation(conversation_id, owner=user.id, **changes))


@router.delete(
    "/conversations/{conversation_id}", status_code=204, responses=error_responses(404, 422)
)
async def delete_conversation(
    conversation_id: str, service: Service, user: CurrentUser
) -> Response:
    await service.delete_conversation(conversation_id, owner=user.id)
    return Response(status_code=204)


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=202,
    response_model=GenerationAccepted,
    responses={**GENERATION_DOC, **error_responses(400, 404, 409, 413, 422, 429)},
)
async def send_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    service: Service,
    user: CurrentUser,
) -> Response:
    started = await service.send(
        conversation_id,
        body.content,
        owner=user.id,
        parent_id=body.parent_id,
        parent_given="parent_id" in body.model_fields_set,
        params=params_of(body.temperature, body.max_tokens),
        model=body.model,
    )
    return generation_response(request, service, started, user)


@router.post(
    "/messages/{message_id}/regenerate",
    status_code=202,
    response_model=GenerationAccepted,
    responses={**GENERATION_DOC, **error_responses(400, 404, 409, 422, 429)},
)
async def regenerate(
    message_id: str,
    request: Request,
    service: Service,
    user: CurrentUser,
    body: Annotated[GenerateOptions | None, Body()] = None,
) -> Response:
    options = body or GenerateOptions()
    started = await service.regenerate(
        message_id,
        owner=user.id,
        params=params_of(options.temperature, options.max_tokens),
        model=options.model,
    )
    return generation_response(request, service, started, user)
