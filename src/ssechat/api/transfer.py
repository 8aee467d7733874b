"""Routes to move conversations out and in: export one conversation (our JSON or Markdown) or all
of them, and import a file (our JSON, ChatGPT's ``conversations.json`` or its zip, LibreChat's).

Every route needs credentials and acts on the caller's own conversations only. Like every
route, they call the service (``ChatService.transfer``), nothing else. The import body is
handed to the service as the stream it arrives as (it is spooled and parsed as it comes, in
bounded memory); a declared length over the limit is refused here before anything is read.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ssechat.api.deps import CurrentUser, Service, json_answer
from ssechat.api.errors import error_responses
from ssechat.api.transfer_schemas import ExportDocument, ImportResult
from ssechat.api.transfer_service import MAX_IMPORT_BYTES, TOO_LARGE
from ssechat.errors import PayloadTooLargeError

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["transfer"], responses=error_responses(401, 403))


@router.get(
    "/conversations/{conversation_id}/export",
    response_model=ExportDocument,
    responses={
        200: {
            "content": {"text/markdown": {"schema": {"type": "string"}}},
            "description": "format=json: our export document holding the conversation; "
            "format=markdown: its current branch as Markdown",
        },
        **error_responses(404, 422),
    },
)
async def export_conversation(
    conversation_id: str,
    service: Service,
    user: CurrentUser,
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> Response:
    if format == "markdown":
        text, title = await service.transfer.export_markdown(
            owner=user.id, conversation_id=conversation_id
        )
        return Response(
            text,
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": _attachment(title, "md")},
        )
    document = await service.transfer.export_json(owner=user.id, conversation_id=conversation_id)
    answer = json_answer(document)
    answer.headers["Content-Disposition"] = _attachment(conversation_id, "json")
    return answer


@router.get("/export", response_model=ExportDocument)
async def export_all(service: Service, user: CurrentUser) -> Response:
    """Every conversation of the caller, with every branch, as one document."""
    answer = json_answer(await service.transfer.export_json(owner=user.id))
    answer.headers["Content-Disposition"] = _attachment("ssechat-export", "json")
    return answer


@router.post(
    "/import",
    responses=error_responses(400, 404, 409, 413, 422, 429),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file as it is: our JSON export, ChatGPT's conversations.json "
            "or its data-export zip, or LibreChat's JSON export (any content type)",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def import_file(request: Request, service: Service, user: CurrentUser) -> ImportResult:
    """Import a file's conversations as the caller's, all or none; ones imported before are
    skipped. 400 names what is wrong and where; 429 while the caller has an import under way
    (or the server as many as it runs at once); 409 when a concurrent import of the same file
    took the ids this one keeps."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_IMPORT_BYTES:
        raise PayloadTooLargeError(TOO_LARGE)
    return ImportResult(**await service.transfer.import_stream(request.stream(), owner=user.id))


def _attachment(name: str, extension: str) -> str:
    # A file name from a title: plain characters only, so the header never needs escaping.
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "conversation"
    return f'attachment; filename="{safe}.{extension}"'
