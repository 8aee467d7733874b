"""What the end-to-end tests run: ``ssechat serve``, the fake upstream, and watched browser pages.

The server runs as a subprocess against the project's fake OpenAI-compatible upstream (answers
are chosen by model name: ``fake-echo@40`` repeats the question at 40 tokens/s,
``fake-tokens-300@30`` writes 300 tokens at 30/s) and serves the built UI from ``web/dist``.
Processes are started with the interpreter running the tests, or ``SSECHAT_E2E_PYTHON``, and
stopped by pid when the context ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


@dataclass
class Server:
    base_url: str
    log: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A JSON call to the API, outside the browser."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

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
def ssechat_serve(workdir: Path, upstream: str) -> Iterator[Server]:
    """``ssechat serve`` on a free port with its own database, talking to ``upstream``."""
    if not (WEB_DIST / "index.html").is_file():
        raise RuntimeError(
            f"the web UI is not built ({WEB_DIST}/index.html is missing): "
            "run `npm --prefix web ci && npm --prefix web run build`"
        )
    port = free_port()
    log = workdir / "server.log"
    env = clean_env(
        SSECHAT_DATABASE_URL=str(workdir / "db.sqlite"),
        SSECHAT_WEB_DIR=str(WEB_DIST),
        SSECHAT_MODEL=DEFAULT_MODEL,
        SSECHAT_HEARTBEAT="2",
        SSECHAT_LOG_LEVEL="warning",
        OPENAI_BASE_URL=upstream,
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "ssechat.cli", "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _healthy(base), proc, "ssechat serve", log)
        yield Server(base, log)
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
    """Opens pages in fresh contexts and watches each for what must never happen."""

    def __init__(self, browser: Any, server: Server) -> None:
        self._browser = browser
        self.server = server
        self.watch = Watch()
        self._contexts: list[Any] = []
        # Hosts a test serves itself (with its own route) and expects the page to contact.
        self.allowed_hosts: set[str] = set()

    def context(self, *, width: int = 1280, height: int = 800, color_scheme: str = "light") -> Any:
        context = self._browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,
            permissions=["clipboard-read", "clipboard-write"],
        )
        context.add_init_script(INIT_SCRIPT)
        context.set_default_timeout(15_000)
        context.on("request", self._on_request)
        # Nothing may leave the machine: requests to other hosts are recorded, then refused.
        context.route(_FOREIGN, lambda route: route.abort("blockedbyclient"))
        self._contexts.append(context)
        return context

    def page(self, path: str = "/", base: str | None = None, **context_options: Any) -> Any:
        page = self.context(**context_options).new_page()
        self.watch_page(page)
        page.goto((base or self.server.base_url) + path)
        return page

    def watch_page(self, page: Any) -> None:
        def on_dialog(dialog: Any) -> None:
            self.watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.watch.page_errors.append(str(error)))

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
