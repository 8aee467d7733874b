"""The HTTP API: the FastAPI application, its lifespan and its routes.

Routes validate input, call the chat service, and shape the answer; errors become
``{"error": {"code", "message"}}`` in one place (``ssechat.api.errors``). This package must never
hold business logic that belongs to runs, the store or the providers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ssechat import __version__
from ssechat.api import admin, auth, chat, conversations, runs, search, tools, transfer
from ssechat.api.errors import install_error_handlers
from ssechat.api.guard import RequestGuard
from ssechat.api.service import open_services
from ssechat.api.web import mount_web
from ssechat.config import Settings

__all__ = ["create_app", "create_worker_app", "print_setup_link", "setup_link"]


def setup_link(settings: Settings, token: str) -> str:
    """The one-time link that opens the first-run setup page."""
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "localhost"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}/setup#token={token}"


def print_setup_link(link: str) -> None:
    # To the console of whoever started the server, not to the log: the link is a secret that
    # makes its holder the admin, and log lines travel further than a terminal.
    print(
        f"ssechat has no account yet. Open this link to make the first admin:\n  {link}", flush=True
    )
    print(
        "(or set SSECHAT_ADMIN_EMAIL and SSECHAT_ADMIN_PASSWORD, or run `ssechat users create`)",
        flush=True,
    )


def create_app(
    settings: Settings | None = None,
    *,
    on_setup_link: Callable[[str], None] | None = None,
    setup_token: bool = True,
) -> FastAPI:
    """Build the application for ``settings`` (default: from the environment).

    While no account exists, starting it makes a one-time setup link and hands it to
    ``on_setup_link`` (default: print it); not with ``setup_token=False`` (a worker: its parent
    made the one link)."""
    settings = settings or Settings.from_env()
    settings.validate()  # settings made in code too: accounts off only on loopback, and so on
    announce = on_setup_link or print_setup_link

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await open_services(settings, setup_token=setup_token)
        try:
            app.state.service = services.chat
            app.state.accounts = services.accounts
            if services.setup_token is not None:
                announce(setup_link(settings, services.setup_token))
            yield
        finally:
            await services.close()

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
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(tools.router)
    app.include_router(search.router)
    app.include_router(transfer.router)
    mount_web(app, settings.web_dir)
    # Outermost last: proxy headers first (the real scheme and client), then the guard.
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=False,  # another site's page uses an API key, never the cookie
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Last-Event-ID"],
            expose_headers=["X-Run-Id", "Location", "Content-Location", "Retry-After"],
        )
    app.add_middleware(RequestGuard, settings=settings)
    if settings.trusted_proxy_list:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    return app


def create_worker_app() -> FastAPI:
    """The app of one of ``ssechat serve --workers N``'s processes (uvicorn's factory, by import
    string): settings from the environment, where ``serve`` put its flags. The setup link is
    printed once by ``serve`` before the workers start, never by each worker."""
    return create_app(Settings.from_env(), setup_token=False)
