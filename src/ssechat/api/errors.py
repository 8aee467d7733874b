"""The one place that turns errors into HTTP answers: ``{"error": {"code", "message"}}``
(``api.schemas.ErrorBody``), and that documents them on the routes (``error_responses``).

It must never put a traceback, a provider key or an internal detail in an answer.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.constants import REF_PREFIX
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ssechat.api.schemas import ErrorBody
from ssechat.errors import RateLimitedError, SSEChatError

__all__ = ["error_response", "error_responses", "install_error_handlers"]

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


_WHY = {
    400: "invalid request (invalid_request), or a body that is not JSON (invalid_json)",
    401: "not signed in, or the credentials are not valid (unauthenticated)",
    403: "not allowed: the role, a cross-site request, or sign-up is closed (forbidden)",
    404: "not found, or not yours (not_found)",
    409: "an answer is still being generated, the email or name is taken, or the tool call "
    "is not waiting for a decision (conflict)",
    413: "content longer than the server's limit (payload_too_large)",
    422: "the request does not match its schema (invalid_request)",
    429: "too many attempts or live runs (rate_limited, too_many_runs); see Retry-After",
    503: "a service it needs (the database, Redis) cannot be reached now (unavailable)",
}


def error_responses(*statuses: int, stream: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's error statuses, each a JSON ``ErrorBody``.

    ``stream``: the route answers ``text/event-stream``, under which FastAPI would file an
    error's model; its errors are JSON all the same, so their schema is referenced by hand
    (the JSON routes put ``ErrorBody`` in the document's components).
    """
    if stream:
        content = {"application/json": {"schema": {"$ref": f"{REF_PREFIX}ErrorBody"}}}
        return {status: {"content": content, "description": _WHY[status]} for status in statuses}
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _describe(errors: list[Any]) -> tuple[int, str, str]:
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return 400, "invalid_json", "the request body is not valid JSON"
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return 422, "invalid_request", "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SSEChatError)
    async def _ours(request: Request, exc: SSEChatError) -> JSONResponse:
        response = error_response(exc.status_code, exc.code, exc.message)
        if isinstance(exc, RateLimitedError):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _describe(list(exc.errors()))
        return error_response(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        response = error_response(exc.status_code, code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "internal error; see the server log")
