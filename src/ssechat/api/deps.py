"""Request-scoped access to the app's services, and the two answer shapes of a generation."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from ssechat.api.service import ChatService, Started
from ssechat.responses import EventStreamResponse

__all__ = ["generation_response", "get_service", "wants_event_stream"]


async def get_service(request: Request) -> ChatService:
    # async: FastAPI runs a plain def dependency in its thread pool, a thread hop per request.
    service: ChatService = request.app.state.service
    return service


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def generation_response(request: Request, service: ChatService, started: Started) -> Response:
    """The run's event stream in the body (fetch + POST clients), or 202 with where to get it."""
    run = started.run
    events_url = f"/api/runs/{run.id}/events"
    if wants_event_stream(request):
        return EventStreamResponse(
            service.runs.subscribe(run),
            heartbeat=service.settings.heartbeat,
            headers={"X-Run-Id": run.id, "Content-Location": events_url},
        )
    body: dict[str, Any] = {
        "run_id": run.id,
        "conversation_id": run.spec.conversation_id,
        "user_message_id": started.user_message_id,
        "message_id": started.message_id,
        "model": run.spec.model,
        "events_url": events_url,
    }
    return JSONResponse(body, status_code=202, headers={"Location": events_url})
