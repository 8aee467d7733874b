"""``SearchService``: full-text search of a user's conversations, for ``ChatService.search``.

It checks what the store does not (the query's length and that it says something), asks the
store, and turns its hits into the API's bodies. It must never build a query for the database
(the store does, from the words it parses) nor reach another user's conversations (the store's
owner check does that).
"""

from __future__ import annotations

from ssechat.api.search_schemas import SearchPage
from ssechat.errors import InvalidRequestError
from ssechat.store import Store
from ssechat.store.models import iso_utc

__all__ = ["MAX_QUERY_LENGTH", "SearchService"]

MAX_QUERY_LENGTH = 500
"""The longest query taken, in characters."""


class SearchService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def search(self, *, owner: str, query: str, limit: int, cursor: str | None) -> SearchPage:
        """One page of ``owner``'s hits for ``query``; ``InvalidRequestError`` (400) for an
        empty query, one of only spaces, or one longer than ``MAX_QUERY_LENGTH``."""
        if not query.strip():
            raise InvalidRequestError("q must hold something to search for")
        if len(query) > MAX_QUERY_LENGTH:
            raise InvalidRequestError(f"q must be at most {MAX_QUERY_LENGTH} characters")
        hits, next_cursor = await self.store.search(owner, query, limit=limit, cursor=cursor)
        return SearchPage.model_validate(
            {
                "results": [
                    {
                        "conversation_id": hit.conversation_id,
                        "title": hit.title,
                        "updated_at": iso_utc(hit.updated_at),
                        "message_id": hit.message_id,
                        "role": hit.role,
                        "snippet": [
                            {"text": part.text, "match": part.match} for part in hit.snippet
                        ],
                    }
                    for hit in hits
                ],
                "next_cursor": next_cursor,
            }
        )
