"""Routes for runs: their state, their event stream (resumable with Last-Event-ID), cancel."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query

from ssechat.api.deps import get_service
from ssechat.api.service import ChatService
from ssechat.errors import InvalidRequestError
from ssechat.responses import EventStreamResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/runs", tags=["runs"])
Service = Annotated[ChatService, Depends(get_service)]

_EVENT_ID = re.compile(r"[0-9]{1,18}")


def parse_last_event_id(value: str | None, last_seq: int) -> int:
    """The id a client last saw, -1 for none; anything but one of this run's ids is refused."""
    if value is None or value.strip() == "":
        return -1
    value = value.strip()
    if not _EVENT_ID.fullmatch(value):
        raise InvalidRequestError(f"malformed Last-Event-ID {value[:40]!r}: expected an event id")
    seq = int(value)
    if seq > last_seq:
        raise InvalidRequestError(f"Last-Event-ID {seq} is ahead of this run (last id {last_seq})")
    return seq


@router.get("/{run_id}")
async def get_run(run_id: str, service: Service) -> dict[str, Any]:
    return service.runs.get(run_id).as_dict()


@router.get(
    "/{run_id}/events",
    response_class=EventStreamResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the run's events"}},
)
async def run_events(
    run_id: str,
    service: Service,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[str | None, Query(max_length=40)] = None,
) -> EventStreamResponse:
    run = service.runs.get(run_id)
    raw = last_event_id_header if last_event_id_header not in (None, "") else last_event_id
    after = parse_last_event_id(raw, run.log.last_seq)
    return EventStreamResponse(
        service.runs.subscribe(run, after),
        heartbeat=service.settings.heartbeat,
        headers={"X-Run-Id": run.id},
    )


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: str, service: Service) -> dict[str, Any]:
    run = await service.runs.cancel(run_id)
    return run.as_dict()
