"""Routes for runs: their state, their event stream (resumable with Last-Event-ID), cancel."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request

from ssechat.api.deps import RUN_EVENTS, CurrentUser, Service, event_stream, event_stream_doc
from ssechat.api.errors import error_responses
from ssechat.api.schemas import RunState
from ssechat.errors import InvalidRequestError
from ssechat.responses import EventStreamResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=error_responses(401, 403))

_EVENT_ID = re.compile(r"[0-9]{1,18}")


def parse_last_event_id(value: str | None) -> int | None:
    """The id a client last saw (None: none); anything but an event id is refused. Whether it
    is one of this run's ids is the service's check."""
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not _EVENT_ID.fullmatch(value):
        raise InvalidRequestError(f"malformed Last-Event-ID {value[:40]!r}: expected an event id")
    return int(value)


@router.get("/{run_id}", responses=error_responses(404, 422))
async def get_run(run_id: str, service: Service, user: CurrentUser) -> RunState:
    return await service.run_state(run_id, owner=user.id)


@router.get(
    "/{run_id}/events",
    response_class=EventStreamResponse,
    responses={
        200: event_stream_doc(
            "the run's events after Last-Event-ID (all without one), then live; the same "
            "events as a generation's answer",
            RUN_EVENTS,
            ids=True,
        ),
        **error_responses(400, 401, 403, 404, 422, stream=True),
    },
)
async def run_events(
    run_id: str,
    request: Request,
    service: Service,
    user: CurrentUser,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query(max_length=40)] = None,
) -> EventStreamResponse:
    raw = last_event_id_header if last_event_id_header not in (None, "") else last_event_id
    after = parse_last_event_id(raw)
    subscription = await service.follow_run(run_id, after, owner=user.id)
    return event_stream(request, subscription, {"X-Run-Id": run_id}, user=user)


@router.post("/{run_id}/cancel", responses=error_responses(404, 422))
async def cancel_run(run_id: str, service: Service, user: CurrentUser) -> RunState:
    return await service.cancel_run(run_id, owner=user.id)
