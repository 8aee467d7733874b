"""The authorization matrix: every route of the app × every kind of caller.

The callers: the owner of the resources in the path, another user, an admin who is not the
owner, a pending user (their sign-in is refused, so they hold nothing), a user set back to
pending and a disabled user (each with the cookie and the key they had while active), nobody,
the owner's revoked key, and the owner's valid key in a header that is not
``Authorization: Bearer`` (``X-API-Key``, ``Authorization`` without the scheme, the cookie).

What each cell must answer: the owner (or, for routes that act on the caller's own data, any
active user) 2xx; another user or an admin on the owner's ids 404 with exactly the body of an
unknown id; a non-admin on an admin route 403 ``forbidden``; every caller without valid
credentials 401 ``unauthenticated``. Each refused request leaves the database as it was (a
plain-SQL snapshot before equals the one after) and sends nothing upstream.

The table ``ROUTES`` must name every route of the app: a new route fails
``test_the_table_names_every_route`` until its expectations are written here.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx
import pytest

from ssechat.api import create_app
from ssechat.fake_upstream import FakeUpstream

from .auth_support import (
    Account,
    Headers,
    admin_account,
    app_routes,
    auth_client,
    auth_settings,
    bearer,
    cookie_header,
    create_key,
    db_path_of,
    db_snapshot,
    make_disabled,
    make_pending,
    make_user,
    revoked_key,
    set_status,
    sign_in,
)

pytestmark = pytest.mark.anyio

FAST = "fake-tokens-3"  # finishes at once
LIVE = "fake-tokens-3+stall-2"  # two tokens, then silence until the run is stopped
SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # Module scope, so that the world below (its app, its people) is built once for the module.
    return "asyncio"


# --- the world: an app, a fake upstream, and one person of each kind -----------------------


@dataclass
class World:
    client: httpx.AsyncClient
    upstream: FakeUpstream
    db: Path
    admin: Account
    owner: Account
    other: Account
    pending: Account
    repending: Account
    disabled: Account
    revoked: str
    emails: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def actors(self) -> dict[str, Headers]:
        """Each caller's headers, read now (a test may have given the owner a new key)."""
        assert self.owner.key is not None
        return {
            "owner": self.owner.cookie,
            "other user": self.other.cookie,
            "admin": self.admin.cookie,
            "pending": {},  # their sign-in was refused: they hold no credentials
            "pending again (cookie)": self.repending.cookie,
            "pending again (key)": self.repending.bearer,
            "disabled (cookie)": self.disabled.cookie,
            "disabled (key)": self.disabled.bearer,
            "no credentials": {},
            "revoked key": bearer(self.revoked),
            "key in X-API-Key": {"X-API-Key": self.owner.key},
            "key without Bearer": {"Authorization": self.owner.key},
            "key as the cookie": cookie_header(self.owner.key),
        }

    def signed_in(self) -> dict[str, Account]:
        """The callers with valid credentials, by their name in ``actors``."""
        return {"owner": self.owner, "other user": self.other, "admin": self.admin}

    def new_email(self) -> str:
        return f"someone-{next(self.emails)}@example.com"


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    async with FakeUpstream() as upstream:
        settings = auth_settings(
            tmp,
            signup="approval",
            openai_base_url=upstream.base_url,
            openai_api_key="sk-matrix-upstream-key",
            model=FAST,
            upstream_max_retries=0,
            max_live_runs_per_user=0,
            # No periodic save during the module: a live run's partial answer would otherwise
            # land in the database between a refused request's two snapshots.
            persist_interval=3600,
        )
        async with auth_client(settings) as client:
            admin = await admin_account(client)
            owner = await make_user(client, admin, "owner@example.com", with_key=True)
            other = await make_user(client, admin, "other@example.com")
            pending = await make_pending(client, "pending@example.com")
            repending = await make_user(client, admin, "repending@example.com", with_key=True)
            await set_status(client, admin, repending.id, "pending")
            disabled = await make_disabled(client, admin, "disabled@example.com")
            revoked = await revoked_key(client, owner)
            yield World(
                client=client,
                upstream=upstream,
                db=db_path_of(settings),
                admin=admin,
                owner=owner,
                other=other,
                pending=pending,
                repending=repending,
                disabled=disabled,
                revoked=revoked,
            )


# --- the owner's resources, fresh for each route -------------------------------------------

Run = Literal["live", "finished"]


@dataclass
class Resources:
    conversation_id: str
    message_id: str
    finished_run_id: str
    live_run_id: str
    key_id: str
    user_id: str
    server_name: str = ""

    def ids(self, run: Run) -> dict[str, str]:
        return {
            "conversation_id": self.conversation_id,
            "message_id": self.message_id,
            "run_id": self.live_run_id if run == "live" else self.finished_run_id,
            "key_id": self.key_id,
            "user_id": self.user_id,
            "name": self.server_name,
            # The owner's runs make no tool call: approving one is a 404 of the run's own (a
            # real call's Approve and Deny are in test_tools_api.py).
            "call_id": "call_none",
        }

    def all_ids(self) -> list[str]:
        return [
            self.conversation_id,
            self.message_id,
            self.finished_run_id,
            self.live_run_id,
            self.key_id,
        ]


async def owner_resources(world: World, *, with_target_user: bool) -> Resources:
    """A conversation with a finished exchange (its answer and its run), a live run in another
    conversation, an API key, and (for the admin routes) a user for an admin to manage."""
    client, owner = world.client, world.owner
    created = await client.post("/api/conversations", json={"model": FAST}, headers=owner.cookie)
    assert created.status_code == 201, created.text
    conversation_id = created.json()["id"]
    sent = await client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"content": "hello"},
        headers={**owner.cookie, **SSE},
    )
    assert sent.status_code == 200, sent.text
    assert "event: done" in sent.text
    finished_run_id = sent.headers["X-Run-Id"]
    run = (await client.get(f"/api/runs/{finished_run_id}", headers=owner.cookie)).json()

    live_conversation = await client.post(
        "/api/conversations", json={"model": LIVE}, headers=owner.cookie
    )
    asked = len(world.upstream.requests)
    started = await client.post(
        f"/api/conversations/{live_conversation.json()['id']}/messages",
        json={"content": "keep going"},
        headers=owner.cookie,
    )
    assert started.status_code == 202, started.text
    # The run asks upstream on its own time: wait for that, so that no refused request below
    # is blamed for it.
    with anyio.fail_after(10):
        await world.upstream.wait_requests(asked + 1)
    key = await create_key(client, owner.cookie, "matrix")
    user_id = server_name = ""
    if with_target_user:
        target = await make_user(client, world.admin, world.new_email(), signed_in=False)
        user_id = target.id
        server_name = await add_mcp_server(world)
    return Resources(
        conversation_id=conversation_id,
        message_id=run["message_id"],
        finished_run_id=finished_run_id,
        live_run_id=started.json()["run_id"],
        key_id=key["id"],
        user_id=user_id,
        server_name=server_name,
    )


async def add_mcp_server(world: World) -> str:
    """An MCP server for admins to manage (turned off: no process is started for it)."""
    name = f"m{uuid.uuid4().hex[:8]}"
    added = await world.client.post(
        "/api/admin/mcp",
        json={"name": name, "config": {"command": "true", "disabled": True}},
        headers=world.admin.cookie,
    )
    assert added.status_code == 201, added.text
    return name


# --- the expectations ----------------------------------------------------------------------

Kind = Literal["public", "sign-in", "self", "owned", "admin"]


@dataclass(frozen=True)
class Route:
    """What a route expects. ``kind``:

    - ``public``: anyone, 200;
    - ``sign-in``: takes credentials in its body; the request sent (``body``) is refused with
      ``refused`` for every caller, whatever headers they bring;
    - ``self``: acts on the caller's own data: any active user ``ok``, else 401;
    - ``owned``: acts on the owner's resource named in the path: the owner ``ok``, another
      user or an admin 404 (the body of an unknown id), else 401;
    - ``admin``: an admin ``ok``, another signed-in user 403, else 401.
    """

    kind: Kind
    ok: int = 200
    body: Callable[[World], Any] | None = None
    params: dict[str, str] | None = None
    sse: bool = False
    refused: int = 0
    owner_run: Run = "live"  # the run the owner's own request names
    fresh_session: bool = False  # the allowed callers each use a session of their own


def _user_body(world: World) -> dict[str, str]:
    return {"email": world.new_email(), "password": "a long enough password"}


def _same_password(world: World) -> dict[str, str]:
    # Filled in per caller (each changes their own password to itself): see _body.
    return {}


ROUTES: dict[tuple[str, str], Route] = {
    # public
    ("GET", "/api/health"): Route("public"),
    ("GET", "/api/auth/status"): Route("public"),
    ("GET", "/openapi.json"): Route("public"),
    ("HEAD", "/openapi.json"): Route("public"),
    ("GET", "/docs"): Route("public"),
    ("HEAD", "/docs"): Route("public"),
    ("GET", "/docs/oauth2-redirect"): Route("public"),
    ("HEAD", "/docs/oauth2-redirect"): Route("public"),
    ("GET", "/redoc"): Route("public"),
    ("HEAD", "/redoc"): Route("public"),
    ("GET", "/"): Route("public"),
    # credentials in the body: each refused, whoever sends it
    ("POST", "/api/auth/setup"): Route(
        "sign-in",
        body=lambda w: {
            "token": "not-the-setup-token",
            "email": w.new_email(),
            "password": "a long enough password",
        },
        refused=401,
    ),
    ("POST", "/api/auth/signup"): Route(
        "sign-in",
        body=lambda w: {"email": "OWNER@example.com", "password": "a long enough password"},
        refused=409,
    ),
    ("POST", "/api/auth/login"): Route(
        "sign-in",
        body=lambda w: {"email": "owner@example.com", "password": "not the password"},
        refused=401,
    ),
    # the caller's own things
    ("GET", "/api/models"): Route("self"),
    ("GET", "/api/chat"): Route("self", params={"message": "hi"}, sse=True),
    ("POST", "/api/chat"): Route(
        "self", body=lambda w: {"messages": [{"role": "user", "content": "hi"}]}, sse=True
    ),
    ("GET", "/api/conversations"): Route("self"),
    ("GET", "/api/search"): Route("self", params={"q": "hello"}),
    ("POST", "/api/conversations"): Route("self", ok=201, body=lambda w: {"title": "mine"}),
    ("GET", "/api/auth/me"): Route("self"),
    ("POST", "/api/auth/logout"): Route("self", ok=204, fresh_session=True),
    ("POST", "/api/auth/password"): Route("self", ok=204, body=_same_password),
    ("GET", "/api/keys"): Route("self"),
    ("GET", "/api/tools"): Route("self"),
    ("POST", "/api/keys"): Route("self", ok=201, body=lambda w: {"name": "another"}),
    ("GET", "/api/export"): Route("self"),
    ("POST", "/api/import"): Route("self", body=lambda w: []),  # ChatGPT's form, empty
    # the owner's resources
    ("GET", "/api/conversations/{conversation_id}"): Route("owned"),
    ("PATCH", "/api/conversations/{conversation_id}"): Route(
        "owned", body=lambda w: {"title": "renamed"}
    ),
    ("DELETE", "/api/conversations/{conversation_id}"): Route("owned", ok=204),
    ("GET", "/api/conversations/{conversation_id}/export"): Route("owned"),
    ("POST", "/api/conversations/{conversation_id}/messages"): Route(
        "owned", body=lambda w: {"content": "again"}, sse=True
    ),
    ("POST", "/api/messages/{message_id}/regenerate"): Route("owned", sse=True),
    ("GET", "/api/runs/{run_id}"): Route("owned"),
    ("GET", "/api/runs/{run_id}/events"): Route("owned", sse=True, owner_run="finished"),
    ("POST", "/api/runs/{run_id}/cancel"): Route("owned"),
    ("POST", "/api/runs/{run_id}/tool_calls/{call_id}/approve"): Route("owned", ok=404),
    ("POST", "/api/runs/{run_id}/tool_calls/{call_id}/deny"): Route("owned", ok=404),
    ("DELETE", "/api/keys/{key_id}"): Route("owned", ok=204),
    # admins only
    ("GET", "/api/admin/users"): Route("admin"),
    ("POST", "/api/admin/users"): Route("admin", ok=201, body=_user_body),
    ("PATCH", "/api/admin/users/{user_id}"): Route("admin", body=lambda w: {"role": "user"}),
    ("DELETE", "/api/admin/users/{user_id}"): Route("admin", ok=204),
    ("GET", "/api/admin/mcp"): Route("admin"),
    ("POST", "/api/admin/mcp"): Route(
        "admin",
        ok=201,
        body=lambda w: {
            "name": f"n{uuid.uuid4().hex[:8]}",
            "config": {"url": "http://127.0.0.1:9/mcp", "disabled": True},
        },
    ),
    ("PATCH", "/api/admin/mcp/{name}"): Route("admin", body=lambda w: {"enabled": False}),
    ("DELETE", "/api/admin/mcp/{name}"): Route("admin", ok=204),
}

ERROR_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict"}


def test_the_table_names_every_route(tmp_path: Path) -> None:
    app = create_app(auth_settings(tmp_path))
    routes = app_routes(app)
    assert ("POST", "/api/conversations/{conversation_id}/messages") in routes  # flattened
    assert set(ROUTES) - routes == set(), "the table names routes the app does not have"
    assert routes - set(ROUTES) == set(), "routes without expectations: add them to ROUTES"


# --- one cell ------------------------------------------------------------------------------


def error_code(response: httpx.Response) -> str | None:
    """The ``code`` of an ``{"error": {"code", "message"}}`` answer, else None."""
    try:
        data = response.json()
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class Matrix:
    """Sends the cells of one route and collects every mismatch, so that a failure lists them
    all."""

    world: World
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, where: str, what: str) -> None:
        if not ok:
            self.problems.append(f"{where}: {what}")

    async def send(
        self, key: tuple[str, str], headers: Headers, ids: dict[str, str], body: Any = None
    ) -> httpx.Response:
        method, template = key
        route = ROUTES[key]
        content = {} if body is None else {"json": body}
        return await self.world.client.request(
            method,
            template.format(**ids),
            params=route.params,
            headers={**(SSE if route.sse else {}), **headers},
            **content,
        )

    async def unchanged(
        self,
        key: tuple[str, str],
        actor: str,
        headers: Headers,
        ids: dict[str, str],
        status: int,
        body: Any = None,
    ) -> httpx.Response:
        """Send a request that must answer ``status`` and change nothing: check that it did,
        that the database is as it was, and that nothing went upstream."""
        world = self.world
        # A credential's last use is written at most once a minute: use it once first, so
        # that this write (if one is due) does not land between the two snapshots.
        await world.client.get("/api/auth/me", headers=headers)
        before, upstream_before = db_snapshot(world.db), len(world.upstream.requests)
        response = await self.send(key, headers, ids, body)
        where = f"{key[0]} {key[1].format(**ids)} as {actor}"
        self.check(response.status_code == status, where, f"{response.status_code} {response.text}")
        self.check(db_snapshot(world.db) == before, where, "the database changed")
        self.check(
            len(world.upstream.requests) == upstream_before, where, "a request went upstream"
        )
        return response

    async def refused(
        self,
        key: tuple[str, str],
        actor: str,
        headers: Headers,
        ids: dict[str, str],
        status: int,
        body: Any = None,
    ) -> httpx.Response:
        """``unchanged``, for a refusal: the answer is a JSON error with the status's code."""
        response = await self.unchanged(key, actor, headers, ids, status, body)
        code = error_code(response)
        where = f"{key[0]} {key[1].format(**ids)} as {actor}"
        self.check(code == ERROR_CODES[status], where, f"error code {code!r}: {response.text}")
        return response

    async def as_unknown(
        self, key: tuple[str, str], actor: str, headers: Headers, ids: dict[str, str], body: Any
    ) -> None:
        """The owner's id answers ``actor`` exactly as an id that does not exist: 404, and the
        same body but for the id itself."""
        theirs = await self.refused(key, actor, headers, ids, 404, body)
        unknown = uuid.uuid4().hex
        made_up = await self.refused(key, actor, headers, dict.fromkeys(ids, unknown), 404, body)
        real = next(value for name, value in ids.items() if "{" + name + "}" in key[1])
        self.check(
            parsed(theirs.text) == parsed(made_up.text.replace(unknown, real)),
            f"{key[0]} {key[1]} as {actor}",
            f"{theirs.text} is not what an unknown id gets: {made_up.text}",
        )


def _body(world: World, route: Route, account: Account | None) -> Any:
    if route.body is _same_password:
        password = account.password if account is not None else "a long enough password"
        return {"current_password": password, "new_password": password}
    return route.body(world) if route.body is not None else None


@pytest.mark.parametrize("key", sorted(ROUTES), ids=lambda k: f"{k[0]} {k[1]}")
async def test_each_caller_gets_what_the_route_allows(world: World, key: tuple[str, str]) -> None:
    route = ROUTES[key]
    matrix = Matrix(world)
    resources = await owner_resources(world, with_target_user=route.kind == "admin")
    try:
        # Every id the path can hold: a run route is tried on a live run and a finished one.
        runs: list[Run] = ["live", "finished"] if "{run_id}" in key[1] else ["live"]
        for actor, headers in world.actors().items():
            account = world.signed_in().get(actor)
            for run in runs:
                ids, body = resources.ids(run), _body(world, route, account)
                if route.kind == "public":
                    await matrix.unchanged(key, actor, headers, ids, 200)
                elif route.kind == "sign-in":
                    await matrix.refused(key, actor, headers, ids, route.refused, body)
                elif account is None:
                    await matrix.refused(key, actor, headers, ids, 401, body)
                elif route.kind == "admin" and actor != "admin":
                    await matrix.refused(key, actor, headers, ids, 403, body)
                elif route.kind == "owned" and actor != "owner":
                    await matrix.as_unknown(key, actor, headers, ids, body)

        # The allowed, last: their requests change things.
        await allowed(matrix, key, resources)

        if key != ("POST", "/api/runs/{run_id}/cancel"):
            # The refused cancels and deletes left the owner's live run running.
            state = await world.client.get(
                f"/api/runs/{resources.live_run_id}", headers=world.owner.cookie
            )
            assert state.json()["status"] == "running", state.text
    finally:
        await world.client.post(
            f"/api/runs/{resources.live_run_id}/cancel", headers=world.owner.cookie
        )
    assert matrix.problems == []


async def allowed(matrix: Matrix, key: tuple[str, str], resources: Resources) -> None:
    """The callers the route is for get ``route.ok``; what another user or an admin gets shows
    nothing of the owner's."""
    world, route = matrix.world, ROUTES[key]
    callers = {
        "self": ["other user", "admin", "owner"],
        "owned": ["owner"],
        "admin": ["admin"],
    }.get(route.kind, [])
    for actor in callers:
        account = world.signed_in()[actor]
        headers = account.cookie
        if route.fresh_session:
            headers = await sign_in(world.client, account.email, account.password)
        ids = resources.ids(route.owner_run)
        response = await matrix.send(key, headers, ids, _body(world, route, account))
        where = f"{key[0]} {key[1]} as {actor}"
        matrix.check(
            response.status_code == route.ok, where, f"{response.status_code} {response.text}"
        )
        if actor != "owner":
            for owned in resources.all_ids():
                matrix.check(owned not in response.text, where, f"shows the owner's {owned}")
        if route.fresh_session:
            gone = await world.client.get("/api/auth/me", headers=headers)
            matrix.check(gone.status_code == 401, where, "the session outlived its sign-out")
    if key == ("POST", "/api/auth/password"):
        # A new password ends the user's API keys: the owner needs a new one for what follows.
        fresh = await create_key(world.client, world.owner.cookie, "after the password")
        world.owner.key, world.owner.key_id = fresh["key"], fresh["id"]
