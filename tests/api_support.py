"""Helpers shared by the API tests: an in-process client with the app's lifespan, SSE parsing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from ssechat.api import create_app
from ssechat.config import Settings
from ssechat.sse import Event, EventDecoder


@asynccontextmanager
async def api_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


def parse_events(chunks: Iterable[bytes], decoder: EventDecoder | None = None) -> list[Event]:
    decoder = decoder or EventDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


@dataclass
class RunStream:
    """A run's events, decoded: the text of its deltas and its final state."""

    events: list[Event]

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def ids(self) -> list[int]:
        return [int(e.last_event_id) for e in self.events]

    @property
    def text(self) -> str:
        return "".join(json.loads(e.data)["text"] for e in self.events if e.type == "delta")

    def first(self, type_: str) -> dict[str, Any]:
        for event in self.events:
            if event.type == type_:
                data: dict[str, Any] = json.loads(event.data)
                return data
        raise AssertionError(f"no {type_!r} event in {self.types}")

    @property
    def done(self) -> dict[str, Any]:
        return self.first("done")


def run_stream(body: bytes) -> RunStream:
    return RunStream(parse_events([body]))
