"""The HTTP API: the FastAPI application, its lifespan and its routes.

Routes validate input, call the chat service, and shape the answer; errors become
``{"error": {"code", "message"}}`` in one place (``ssechat.api.errors``). This package must never
hold business logic that belongs to runs, the store or the providers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ssechat import __version__
from ssechat.api import chat, conversations, runs
from ssechat.api.errors import install_error_handlers
from ssechat.api.service import ChatService
from ssechat.api.web import mount_web
from ssechat.config import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await ChatService.open(settings)
        app.state.service = service
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="ssechat",
        version=__version__,
        summary="A self-hosted ChatGPT-style chat server streaming over Server-Sent Events.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(conversations.router)
    app.include_router(runs.router)
    mount_web(app, settings.web_dir)
    return app
