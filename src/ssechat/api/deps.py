"""What the routes share: the services of the request, who is asking (``CurrentUser``: a
checked session cookie or API key, else 401), event-stream answers and their documentation, and
the two answer shapes of a generation (its event stream, or 202).

Every route but health and the public sign-in ones takes ``CurrentUser`` and hands its id to the
service as ``owner``: the owner checks themselves are in the store's queries and the service.

This module, like the routes, reaches nothing behind the service.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from starlette.responses import Response

from ssechat.api.schemas import GenerationAccepted
from ssechat.api.service import ChatService, Started
from ssechat.auth import AccountService, Principal
from ssechat.responses import EventStreamResponse, FrameSource

__all__ = [
    "RUN_EVENTS",
    "SESSION_COOKIE",
    "Accounts",
    "CurrentUser",
    "Service",
    "current_user",
    "event_stream",
    "event_stream_doc",
    "generation_response",
    "get_accounts",
    "get_service",
    "json_answer",
    "wants_event_stream",
]

RUN_EVENTS = (
    "run",
    "reasoning",
    "delta",
    "tool_call",
    "tool_decision",
    "tool_result",
    "error",
    "done",
)
"""The events of a run's stream (``ssechat.runs``), in the order they come."""


def event_stream_doc(description: str, events: Sequence[str], *, ids: bool) -> dict[str, Any]:
    """The OpenAPI description of a ``text/event-stream`` answer. Its ``schema`` describes one
    event, as OpenAPI 3.1 tools read it (3.2 names it ``itemSchema``): its type (one of
    ``events``), its data, and, with ``ids``, its id."""
    properties: dict[str, Any] = {
        "event": {"type": "string", "enum": list(events)},
        "data": {"type": "string"},
    }
    if ids:
        properties["id"] = {"type": "string", "pattern": "^[0-9]+$"}
    event = {"type": "object", "properties": properties, "required": sorted(properties)}
    return {"content": {"text/event-stream": {"schema": event}}, "description": description}


def event_stream(
    request: Request,
    source: FrameSource | AsyncIterable[bytes],
    headers: Mapping[str, str] | None = None,
    *,
    user: Principal,
) -> EventStreamResponse:
    """The stream for ``user``: ending their session or account ends it (``AccountService``)."""
    service: ChatService = request.app.state.service
    accounts: AccountService = request.app.state.accounts
    return EventStreamResponse(
        source, heartbeat=service.settings.heartbeat, headers=headers, watch=accounts.watch(user)
    )


def json_answer(data: Any) -> Response:
    """``data`` (plain values the service built in a response model's shape) as JSON, sent as it
    is: the route's ``response_model`` documents it, the tests check it against that schema."""
    return Response(orjson.dumps(data), media_type="application/json")


async def get_service(request: Request) -> ChatService:
    # async: FastAPI runs a plain def dependency in its thread pool, a thread hop per request.
    service: ChatService = request.app.state.service
    return service


async def get_accounts(request: Request) -> AccountService:
    accounts: AccountService = request.app.state.accounts
    return accounts


SESSION_COOKIE = "ssechat_session"


async def current_user(request: Request) -> Principal:
    """Who is asking: the ``Authorization: Bearer`` key if the header is there, else the session
    cookie; ``UnauthenticatedError`` (401) without valid credentials."""
    accounts: AccountService = request.app.state.accounts
    authorization = request.headers.get("authorization")
    if authorization is not None and authorization[:7].lower() == "bearer ":
        return await accounts.authenticate(authorization, None)  # the cookie is not read
    return await accounts.authenticate(authorization, request.cookies.get(SESSION_COOKIE))


Service = Annotated[ChatService, Depends(get_service)]
Accounts = Annotated[AccountService, Depends(get_accounts)]
CurrentUser = Annotated[Principal, Depends(current_user)]


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def generation_response(
    request: Request, service: ChatService, started: Started, user: Principal
) -> Response:
    """The run's event stream in the body (fetch + POST clients), or 202 with where to get it."""
    events_url = f"/api/runs/{started.run_id}/events"
    if wants_event_stream(request):
        headers = {"X-Run-Id": started.run_id, "Content-Location": events_url}
        return event_stream(request, service.follow(started), headers, user=user)
    body = GenerationAccepted(
        run_id=started.run_id,
        conversation_id=started.conversation_id,
        user_message_id=started.user_message_id,
        message_id=started.message_id,
        model=started.model,
        events_url=events_url,
    )
    # The route answers one of two shapes, so it returns a Response (its response_model only
    # documents this one); pydantic's serializer is as fast as the JSONResponse it replaced.
    return Response(
        body.model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={"Location": events_url},
    )
