"""The HTTP API: the FastAPI application and its routes.

It must never hold business logic that belongs to runs, the store or the providers: routes
validate input, call those, and shape the answer.
"""

from __future__ import annotations

from fastapi import FastAPI

from ssechat import __version__
from ssechat.config import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    app = FastAPI(title="ssechat", version=__version__)
    app.state.settings = settings

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
