"""The route of full-text search: ``GET /api/search`` over the user's own conversations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ssechat.api.deps import CurrentUser, Service
from ssechat.api.errors import error_responses
from ssechat.api.search_schemas import SearchPage

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["search"], responses=error_responses(401, 403))


@router.get("/search", responses=error_responses(400, 422))
async def search(
    service: Service,
    user: CurrentUser,
    q: Annotated[
        str,
        Query(
            description='words (all must match), "quoted phrases", a trailing * for a prefix; '
            "anything else is taken as text. 1 to 500 characters, not only spaces"
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> SearchPage:
    return await service.search.search(owner=user.id, query=q, limit=limit, cursor=cursor)
