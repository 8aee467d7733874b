"""Helpers for the account tests: an in-process app with accounts on, its people, and a snapshot
of its database.

``auth_client`` runs the app's lifespan and talks to it over httpx's ``ASGITransport`` with a
client that never keeps a cookie: every request says who it is through explicit headers
(``Account.cookie``, ``bearer``), so one actor's session can never leak into another's request.
``make_user`` and its siblings make each kind of person the matrix needs, through the API itself
(an admin creates, approves, disables; a user signs in and makes keys). ``db_snapshot`` reads
every table of the SQLite file with plain SQL, to show that a refused request changed nothing.
"""

from __future__ import annotations

import http.cookiejar
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from ssechat.api import create_app
from ssechat.config import Settings

from .store_support import NOT_DERIVED

SESSION_COOKIE = "ssechat_session"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery staple"
PASSWORD = "a long enough password"
HOST = "test"  # httpx's base_url below: the Host the app sees
ORIGIN = f"http://{HOST}"

Headers = dict[str, str]


def auth_settings(tmp_path: Path, *, headless_admin: bool = True, **overrides: Any) -> Settings:
    """Accounts on, the Host allow-list naming the test client's host, a fresh SQLite file, the
    demo model at full speed; with ``headless_admin`` the first admin comes from the
    ``SSECHAT_ADMIN_*`` settings. Generous sign-in limits unless a test sets its own."""
    values: dict[str, Any] = {
        "database_url": str(tmp_path / "chat.db"),
        "web_dir": str(tmp_path / "no-web"),
        "allowed_hosts": HOST,
        "demo_tokens_per_second": 0,
        "heartbeat": 60,
        "login_limit_account": "1000 per 15 minutes",
        "login_limit_address": "1000 per 15 minutes",
    }
    if headless_admin:
        values.update(admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD)
    values.update(overrides)
    settings = Settings(**values)
    settings.validate()
    return settings


def db_path_of(settings: Settings) -> Path:
    return Path(settings.database_url)


def _no_cookies() -> http.cookiejar.CookieJar:
    # A jar whose policy accepts no domain: Set-Cookie answers are never stored, so a request
    # carries a session only when the test puts it in the headers. (Handed to httpx as a jar:
    # an httpx.Cookies would be copied into a default jar that keeps everything.)
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


@asynccontextmanager
async def client_for(
    app: FastAPI, client_address: tuple[str, int] = ("127.0.0.1", 40000)
) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-less client of a started ``app``, seen by it as ``client_address``."""
    transport = httpx.ASGITransport(app=app, client=client_address)
    async with httpx.AsyncClient(
        transport=transport, base_url=ORIGIN, cookies=_no_cookies()
    ) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


@asynccontextmanager
async def auth_client(
    settings: Settings,
    *,
    client_address: tuple[str, int] = ("127.0.0.1", 40000),
    on_setup_link: Callable[[str], None] | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """The app for ``settings``, started (its lifespan runs), and a cookie-less client for it
    (``client.app`` is the app, for ``client_for``).

    ``client_address`` is the peer address the app sees (``ASGITransport``'s ``client``)."""
    app = create_app(settings, on_setup_link=on_setup_link or (lambda link: None))
    async with app.router.lifespan_context(app), client_for(app, client_address) as client:
        yield client


def app_of(client: httpx.AsyncClient) -> FastAPI:
    """The app an ``auth_client`` talks to."""
    app: FastAPI = client.app  # type: ignore[attr-defined]
    return app


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path template) the app routes, included routers flattened."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        assert context.path is not None, context
        for method in context.methods or ():
            found.add((method, context.path))
    return found


# --- people --------------------------------------------------------------------------------


@dataclass
class Account:
    """Someone with an account, and the credentials the test holds for them."""

    id: str
    email: str
    password: str
    role: str = "user"
    token: str | None = None  # the session cookie's value
    key: str | None = None  # an API key
    key_id: str | None = None

    @property
    def cookie(self) -> Headers:
        assert self.token is not None, f"{self.email} is not signed in"
        return cookie_header(self.token)

    @property
    def bearer(self) -> Headers:
        assert self.key is not None, f"{self.email} has no API key"
        return {"Authorization": f"Bearer {self.key}"}


def cookie_header(token: str) -> Headers:
    return {"Cookie": f"{SESSION_COOKIE}={token}"}


def session_token(response: httpx.Response) -> str | None:
    """The session token a sign-in answer set, if any."""
    return response.cookies.get(SESSION_COOKIE)


async def login_token(client: httpx.AsyncClient, email: str, password: str) -> str:
    """Sign in; the new session's token (the cookie's value)."""
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token = session_token(response)
    assert token, "the sign-in set no session cookie"
    return token


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> Headers:
    """Sign in; the headers that carry the new session's cookie."""
    return cookie_header(await login_token(client, email, password))


async def sign_in_account(client: httpx.AsyncClient, account: Account) -> Account:
    account.token = await login_token(client, account.email, account.password)
    return account


async def admin_account(client: httpx.AsyncClient) -> Account:
    """The headless admin (``SSECHAT_ADMIN_*``), signed in."""
    token = await login_token(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    me = (await client.get("/api/auth/me", headers=cookie_header(token))).json()
    return Account(
        id=me["id"], email=ADMIN_EMAIL, password=ADMIN_PASSWORD, role="admin", token=token
    )


async def create_key(client: httpx.AsyncClient, headers: Headers, name: str = "k") -> Any:
    response = await client.post("/api/keys", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def make_user(
    client: httpx.AsyncClient,
    admin: Account,
    email: str,
    *,
    role: str = "user",
    password: str = PASSWORD,
    signed_in: bool = True,
    with_key: bool = False,
) -> Account:
    """An active account made by ``admin``; signed in, and with an API key if asked."""
    response = await client.post(
        "/api/admin/users",
        json={"email": email, "password": password, "role": role},
        headers=admin.cookie,
    )
    assert response.status_code == 201, response.text
    account = Account(id=response.json()["id"], email=email, password=password, role=role)
    if signed_in:
        await sign_in_account(client, account)
    if with_key:
        key = await create_key(client, account.cookie)
        account.key, account.key_id = key["key"], key["id"]
    return account


async def make_pending(client: httpx.AsyncClient, email: str) -> Account:
    """An account that signed up under the ``approval`` policy: pending, and its sign-in is
    refused (403) without a cookie, so it holds no credentials at all."""
    response = await client.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert response.json() == {"status": "pending"}
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 403, login.text
    assert session_token(login) is None
    return Account(id="", email=email, password=PASSWORD)


async def set_status(
    client: httpx.AsyncClient, admin: Account, user_id: str, status: str
) -> httpx.Response:
    response = await client.patch(
        f"/api/admin/users/{user_id}", json={"status": status}, headers=admin.cookie
    )
    assert response.status_code == 200, response.text
    return response


async def make_disabled(client: httpx.AsyncClient, admin: Account, email: str) -> Account:
    """An account that signed in and made a key while active, then an admin disabled it: the
    test keeps the cookie and the key it had."""
    account = await make_user(client, admin, email, with_key=True)
    assert (await client.get("/api/auth/me", headers=account.cookie)).status_code == 200
    await set_status(client, admin, account.id, "disabled")
    return account


async def revoked_key(client: httpx.AsyncClient, account: Account) -> str:
    """A key ``account`` made and then revoked (DELETE /api/keys/{id})."""
    key = await create_key(client, account.cookie, "revoked")
    assert (await client.get("/api/auth/me", headers=bearer(key["key"]))).status_code == 200
    response = await client.delete(f"/api/keys/{key['id']}", headers=account.cookie)
    assert response.status_code == 204, response.text
    return str(key["key"])


def bearer(key: str) -> Headers:
    return {"Authorization": f"Bearer {key}"}


# --- the database --------------------------------------------------------------------------

Snapshot = dict[str, list[tuple[Any, ...]]]


def db_snapshot(path: Path) -> Snapshot:
    """Every table's rows, sorted, read with plain SQL on a read-only connection of its own."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'table'{NOT_DERIVED} ORDER BY name"
            )
        ]
        snapshot = {
            table: sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
            for table in tables
        }
    conn.close()
    return snapshot
