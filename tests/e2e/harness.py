"""What the end-to-end tests run: ``ssechat serve``, the fake upstream, and watched browser pages.

The server runs as a subprocess against the project's fake OpenAI-compatible upstream (answers
are chosen by model name: ``fake-echo@40`` repeats the question at 40 tokens/s,
``fake-tokens-300@30`` writes 300 tokens at 30/s) and serves the built UI from ``web/dist``.
Processes are started with the interpreter running the tests, or ``SSECHAT_E2E_PYTHON``, and
stopped by pid when the context ends.

Accounts are on, as in production: a server starts with an admin (``SSECHAT_ADMIN_EMAIL``),
``Server.api`` signs its calls with an API key that admin made at start, and every browser
context is signed in (its cookie set through the context's own request API) unless a test asks
for a signed-out one. A server started without an admin prints its one-time setup link, which
``Server.setup_link`` reads back from its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..server_process import clean_env, free_port, stop

REPO = Path(__file__).resolve().parents[2]
WEB_DIST = Path(os.environ.get("SSECHAT_WEB_DIR") or REPO / "web" / "dist")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("SSECHAT_CHROMIUM", "/usr/bin/chromium")
PYTHON = os.environ.get("SSECHAT_E2E_PYTHON", sys.executable)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_MODEL = "fake-echo@100"
SESSION_COOKIE = "ssechat_session"


_DERIVED = tuple(
    f'INSERT INTO "{table}' for table in ("messages_fts", "titles_fts", "search_pending")
)


@dataclass(frozen=True)
class Account:
    email: str
    password: str


# The admin every server of the suite starts with (but the fresh ones, made through setup).
ADMIN = Account("admin@e2e.example", "an admin's long e2e password")


def eventually(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll ``check`` (a condition on the server, which the page changes asynchronously)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {what}")
        time.sleep(0.05)


# --- processes --------------------------------------------------------------------------------


def _wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + 30
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{log.read_text()}")
        time.sleep(0.05)


def _can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/api/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def fake_upstream(workdir: Path) -> Iterator[str]:
    """``python -m ssechat.fake_upstream`` on a free port; yields its ``/v1`` base URL."""
    port = free_port()
    log = workdir / "upstream.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "ssechat.fake_upstream", "--port", str(port)],
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until(lambda: _can_connect(port), proc, "the fake upstream", log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)


@dataclass(frozen=True)
class Reply:
    """An API answer whatever its status: for the tests that expect a refusal."""

    status: int
    headers: httpx.Headers
    body: Any


@dataclass
class Server:
    base_url: str
    log: Path
    database: Path
    admin: Account | None = None
    key: str | None = None
    """An API key of ``admin``, made at start: what ``api`` sends as ``Authorization: Bearer``."""

    def api(self, method: str, path: str, body: Any = None, *, key: str | None = None) -> Any:
        """A JSON call to the API, outside the browser, with ``key`` (default: the admin's)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key or self.key:
            headers["Authorization"] = f"Bearer {key or self.key}"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        session: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """A call that returns any status instead of raising: with ``key`` as Bearer, or the
        ``session`` token as the cookie, or no credentials at all."""
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        cookies = {SESSION_COOKIE: session} if session is not None else None
        with httpx.Client(base_url=self.base_url, cookies=cookies, timeout=10) as client:
            response = client.request(method, path, json=body, headers=sent)
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = response.text
        return Reply(response.status_code, response.headers, parsed)

    def login(self, account: Account) -> str:
        """Sign in outside the browser; returns the session token (the cookie's value)."""
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            response = client.post(
                "/api/auth/login", json={"email": account.email, "password": account.password}
            )
            if response.status_code != 200:
                raise AssertionError(f"sign-in as {account.email}: {response.text}")
            return str(response.cookies[SESSION_COOKIE])

    def add_user(self, role: str = "user", name: str | None = None) -> tuple[Account, Any]:
        """A new active account with a unique email (made by the admin); and its ``UserInfo``."""
        account = Account(f"user-{uuid.uuid4().hex[:10]}@e2e.example", "a user's e2e password")
        info = self.api(
            "POST",
            "/api/admin/users",
            {"email": account.email, "password": account.password, "name": name, "role": role},
        )
        return account, info

    def user_by_email(self, email: str) -> Any:
        users = self.api("GET", "/api/admin/users")["users"]
        return next((user for user in users if user["email"] == email.lower()), None)

    def setup_link(self) -> str:
        """The one-time setup link the server printed (a server started without an admin)."""
        found: list[str] = []

        def printed() -> bool:
            found[:] = re.findall(r"http://\S+/setup#token=\S+", self.log.read_text())
            return bool(found)

        eventually(printed, "the server printed its setup link")
        return found[-1]

    def dump(self) -> str:
        """Every row of the database as plain SQL (read-only, beside the running server), but
        the search index's and its pending list's: derived from the rows, and written by the
        server's indexer in its own time."""
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            return "\n".join(line for line in conn.iterdump() if not line.startswith(_DERIVED))
        finally:
            conn.close()

    def new_conversation(self, model: str = DEFAULT_MODEL, **fields: Any) -> str:
        created = self.api("POST", "/api/conversations", {"model": model, **fields})
        return str(created["id"])

    def conversation(self, conversation_id: str) -> Any:
        return self.api("GET", f"/api/conversations/{conversation_id}")

    def wait_for_leaf(self, conversation_id: str, leaf_id: str, timeout: float = 10) -> None:
        """Until the server shows ``leaf_id`` as the conversation's current leaf."""
        deadline = time.monotonic() + timeout
        while self.conversation(conversation_id)["current_leaf_id"] != leaf_id:
            if time.monotonic() > deadline:
                raise AssertionError(f"the current leaf never became {leaf_id}")
            time.sleep(0.05)

    def wait_for_answer(self, conversation_id: str, timeout: float = 30) -> Any:
        """Until the leaf answer of the conversation is no longer streaming; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            detail = self.conversation(conversation_id)
            by_id = {m["id"]: m for m in detail["messages"]}
            leaf = by_id.get(detail["current_leaf_id"])
            if leaf is not None and leaf["role"] == "assistant" and leaf["status"] != "streaming":
                return leaf
            if time.monotonic() > deadline:
                raise AssertionError(f"the answer did not finish: {leaf}")
            time.sleep(0.1)


@contextlib.contextmanager
def ssechat_serve(
    workdir: Path,
    upstream: str,
    *,
    admin: Account | None = ADMIN,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """``ssechat serve`` on a free port with its own database, talking to ``upstream``; with
    ``admin`` (then ``Server.api`` signs its calls with a key of theirs), or without any account
    (then it prints a setup link); ``env`` adds settings (``SSECHAT_SIGNUP``...)."""
    if not (WEB_DIST / "index.html").is_file():
        raise RuntimeError(
            f"the web UI is not built ({WEB_DIST}/index.html is missing): "
            "run `npm --prefix web ci && npm --prefix web run build`"
        )
    port = free_port()
    log = workdir / "server.log"
    database = workdir / "db.sqlite"
    accounts = {}
    if admin is not None:
        accounts = {"SSECHAT_ADMIN_EMAIL": admin.email, "SSECHAT_ADMIN_PASSWORD": admin.password}
    environment = clean_env(
        SSECHAT_DATABASE_URL=str(database),
        SSECHAT_WEB_DIR=str(WEB_DIST),
        SSECHAT_MODEL=DEFAULT_MODEL,
        SSECHAT_HEARTBEAT="2",
        SSECHAT_LOG_LEVEL="warning",
        OPENAI_BASE_URL=upstream,
        **accounts,
        **(env or {}),
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "ssechat.cli", "serve", "--port", str(port)],
            env=environment,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _healthy(base), proc, "ssechat serve", log)
        server = Server(base, log, database, admin)
        if admin is not None:
            token = server.login(admin)
            made = server.call("POST", "/api/keys", {"name": "e2e harness"}, session=token)
            if made.status != 201:
                raise RuntimeError(f"could not make the harness's API key: {made.body}")
            server.key = made.body["key"]
        yield server
    finally:
        stop(proc)


# --- the browser ------------------------------------------------------------------------------


@dataclass
class Watch:
    """What pages did that they must not: foreign requests, dialogs, uncaught errors."""

    foreign_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


# Runs before the page's own scripts. CSP violations mean something tried to run or load what
# the policy forbids; the XSS test expects none.
INIT_SCRIPT = """
(() => {
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
  });
})();
"""

_FOREIGN = re.compile(r"^(https?|wss?)://(?!(127\.0\.0\.1|localhost|\[::1\])[:/])")


class Browser:
    """Opens pages in fresh contexts, signed in unless asked otherwise, and watches each for
    what must never happen."""

    def __init__(self, browser: Any, server: Server) -> None:
        self._browser = browser
        self.server = server
        self.watch = Watch()
        self._contexts: list[Any] = []
        # Hosts a test serves itself (with its own route) and expects the page to contact.
        self.allowed_hosts: set[str] = set()

    def context(
        self,
        *,
        width: int = 1280,
        height: int = 800,
        color_scheme: str = "light",
        server: Server | None = None,
        user: Account | bool | None = True,
        **options: Any,
    ) -> Any:
        """A new context; signed in to ``server`` (default: the session's) as ``user``: an
        account, ``True`` for the server's admin (if it has one), ``None``/``False`` for none."""
        context = self._browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,
            permissions=["clipboard-read", "clipboard-write"],
            **options,
        )
        self._contexts.append(context)
        context.add_init_script(INIT_SCRIPT)
        context.set_default_timeout(15_000)
        context.on("request", self._on_request)
        # Nothing may leave the machine: requests to other hosts are recorded, then refused.
        context.route(_FOREIGN, self._refuse_foreign)
        server = server or self.server
        account = server.admin if user is True else user or None
        if account is not None:
            self.sign_in(context, account, server)
        return context

    def sign_in(self, context: Any, account: Account, server: Server | None = None) -> None:
        """Sign ``context`` in through its own request API, so the cookie lands in it."""
        base = (server or self.server).base_url
        response = context.request.post(
            base + "/api/auth/login", data={"email": account.email, "password": account.password}
        )
        if response.status != 200:
            raise AssertionError(f"sign-in as {account.email}: {response.status} {response.text()}")

    def page(
        self, path: str = "/", base: str | None = None, *, server: Server | None = None, **kw: Any
    ) -> Any:
        """A page of a new context (``kw``: ``context``'s options), opened at ``path``."""
        page = self.context(server=server, **kw).new_page()
        self.watch_page(page)
        page.goto((base or (server or self.server).base_url) + path)
        return page

    def watch_page(self, page: Any) -> None:
        def on_dialog(dialog: Any) -> None:
            self.watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.watch.page_errors.append(str(error)))

    def _refuse_foreign(self, route: Any) -> None:
        if urlsplit(route.request.url).hostname in self.allowed_hosts:
            route.fallback()
        else:
            route.abort("blockedbyclient")

    def _on_request(self, request: Any) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in ("http", "https", "ws", "wss"):
            return
        if parts.hostname not in LOOPBACK and parts.hostname not in self.allowed_hosts:
            self.watch.foreign_requests.append(request.url)

    def close(self) -> None:
        for context in self._contexts:
            with contextlib.suppress(Exception):
                context.close()
