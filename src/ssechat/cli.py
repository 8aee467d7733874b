"""The ``ssechat`` command line: ``serve`` starts the server, ``chat`` talks to a running one,
``users`` manages accounts on the server's database (for headless installs and lost passwords).

``ssechat chat`` is a real client of the HTTP API built on ``ssechat.sse``: it streams the answer
to the terminal as it is generated, and if the connection drops it resumes the run with
``Last-Event-ID``, so nothing is printed twice or lost. It signs its requests with an API key
(``--api-key`` or ``SSECHAT_API_KEY``). This module must never contain server logic: it parses
flags into ``Settings`` and hands them on, and never prints a password or a key.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import httpx

from ssechat import __version__
from ssechat.config import ENV_PREFIX, Settings
from ssechat.sse import EventDecoder

__all__ = ["main"]

RESUME_ATTEMPTS = 5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssechat", description="A self-hosted ChatGPT-style chat server."
    )
    parser.add_argument("--version", action="version", version=f"ssechat {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start the chat server")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--db", dest="database_url", help="database URL or SQLite file path")
    serve.add_argument("--model", help="default model for new conversations")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes on the one port (default 1; more need PostgreSQL and Redis)",
    )

    chat = commands.add_parser("chat", help="ask a running server and stream the answer")
    chat.add_argument("question", help="what to ask")
    chat.add_argument("--conversation", "-c", help="continue this conversation (an id)")
    chat.add_argument("--model", help="model to answer with")
    chat.add_argument("--url", help="the server (default http://127.0.0.1:8000)")
    chat.add_argument(
        "--api-key", help="an API key made in the web UI's settings (default: $SSECHAT_API_KEY)"
    )

    users = commands.add_parser("users", help="manage accounts (on the server's database)")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    create = users_commands.add_parser(
        "create", help="make an account; the password is asked for, or read from stdin"
    )
    create.add_argument("email")
    create.add_argument("--name", help="the name shown in the UI")
    create.add_argument("--admin", action="store_true", help="make an admin")
    create.add_argument("--db", dest="database_url", help="database URL or SQLite file path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = Settings.from_env(
                host=args.host,
                port=args.port,
                database_url=args.database_url,
                model=args.model,
                workers=args.workers,
            )
            return serve(settings)
        if args.command == "users":
            settings = Settings.from_env(database_url=args.database_url)
            return create_user(settings, args.email, name=args.name, admin=args.admin)
        settings = Settings.from_env(api_key=args.api_key)
    except ValueError as exc:
        print(f"ssechat: {exc}", file=sys.stderr)
        return 2
    url = args.url or f"http://{settings.host}:{settings.port}"
    return chat(
        url,
        args.question,
        conversation=args.conversation,
        model=args.model,
        api_key=settings.api_key or None,
    )


def serve(settings: Settings) -> int:
    import uvicorn

    from ssechat.api import create_app

    where = "the demo model (offline)" if not settings.has_upstream else "an OpenAI-compatible API"
    processes = f" in {settings.workers} processes" if settings.workers > 1 else ""
    print(
        f"ssechat {__version__} on http://{settings.host}:{settings.port}{processes}, "
        f"answering with {where}",
        flush=True,
    )
    if settings.auth == "off":
        print(
            "accounts are off (SSECHAT_AUTH=off): everyone who reaches this port is you", flush=True
        )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": 3,
        # The app applies X-Forwarded-* itself, from SSECHAT_TRUSTED_PROXIES only: uvicorn's
        # default would believe them from 127.0.0.1.
        "proxy_headers": False,
    }
    # The first-run work, once, before any worker starts (and a clear message, not a start-up
    # traceback, when the database cannot be opened): the database is migrated, the headless
    # admin made and the setup link printed by this process, never raced for by N workers.
    from ssechat.api import print_setup_link, setup_link
    from ssechat.errors import SSEChatError

    try:
        token = asyncio.run(_first_run(settings))
    except (SSEChatError, ValueError, RuntimeError) as exc:
        print(f"ssechat: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    if token is not None:
        print_setup_link(setup_link(settings, token))
    if settings.workers == 1:
        uvicorn.run(create_app(settings, setup_token=False), **options)
        return 0
    return serve_workers(settings, options)


# The serve flags, which the worker processes read back from the environment.
SERVE_FLAGS = ("host", "port", "database_url", "model")


def serve_workers(settings: Settings, options: dict[str, Any]) -> int:
    """``--workers N``: uvicorn's worker processes on one socket, each building its app from the
    environment (``ssechat.api.create_worker_app``), after ``serve`` did the first-run work."""
    import uvicorn

    for name in SERVE_FLAGS:
        value = getattr(settings, name)
        if value != "":
            os.environ[ENV_PREFIX + name.upper()] = str(value)  # inherited by the workers
    uvicorn.run("ssechat.api:create_worker_app", factory=True, workers=settings.workers, **options)
    return 0


async def _first_run(settings: Settings) -> str | None:
    from ssechat.auth import AccountService
    from ssechat.store import open_store
    from ssechat.tools import parse_file

    if settings.mcp_config:
        # A settings file that cannot be used: one line saying where, not a worker's traceback.
        parse_file(settings.mcp_config)
    async with await open_store(settings.database_url or None) as store:
        accounts = AccountService(settings, store)
        try:
            return await accounts.start()
        finally:
            await accounts.close()


# --- accounts ---------------------------------------------------------------------------------


def read_password(stdin: TextIO | None = None) -> str:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != password:
        raise ValueError("the two passwords differ")
    return password


def create_user(settings: Settings, email: str, *, name: str | None, admin: bool) -> int:
    from pydantic import ValidationError

    from ssechat.api.account_schemas import UserCreate
    from ssechat.errors import SSEChatError

    try:
        password = read_password()
        body = UserCreate(
            email=email, password=password, name=name, role="admin" if admin else "user"
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"ssechat: {problems}", file=sys.stderr)
        return 2
    except (ValueError, EOFError, KeyboardInterrupt) as exc:
        print(f"ssechat: {exc or 'no password given'}", file=sys.stderr)
        return 2
    try:
        role = asyncio.run(_create_user(settings, body.email, body.password, body.name, body.role))
    except SSEChatError as exc:
        print(f"ssechat: {exc.message}", file=sys.stderr)
        return 1
    print(f"created {role} account {body.email}")
    return 0


async def _create_user(
    settings: Settings, email: str, password: str, name: str | None, role: str
) -> str:
    from ssechat.auth import AccountService
    from ssechat.errors import InvalidRequestError
    from ssechat.store import open_store

    async with await open_store(settings.database_url or None) as store:
        if role != "admin" and not await store.accounts.count_users():
            raise InvalidRequestError("the first account must be an admin: add --admin")
        accounts = AccountService(settings, store)
        user = await accounts.add_user(email=email, password=password, name=name, role=role)
        return user.role


# --- the chat client --------------------------------------------------------------------------


class ChatError(Exception):
    pass


NEEDS_KEY = (
    "this server needs an API key: sign in to its web UI, open Settings, create a key under "
    "'API keys', then pass it with --api-key or set SSECHAT_API_KEY"
)


def chat(
    url: str,
    question: str,
    *,
    conversation: str | None,
    model: str | None,
    api_key: str | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(
            base_url=url, timeout=httpx.Timeout(30.0, read=None), headers=headers
        ) as client:
            if conversation is None:
                created = _json(client.post("/api/conversations", json={}))
                conversation = str(created["id"])
            body: dict[str, Any] = {"content": question}
            if model:
                body["model"] = model
            status = _stream_answer(client, conversation, body, out)
    except ChatError as exc:
        print(f"\nssechat: {exc}", file=sys.stderr)
        return 1
    except httpx.TransportError:
        print(
            f"ssechat: cannot reach a server at {url}; start one with `ssechat serve`",
            file=sys.stderr,
        )
        return 1
    print(f"\n[{status}] conversation {conversation}", file=sys.stderr)
    return 0 if status in ("complete", "length") else 1


def _tool_name(data: dict[str, Any]) -> str:
    server, tool = data.get("server"), data.get("tool")
    return f"{server}/{tool}" if server and tool else str(data.get("name", "?"))


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _note_call(data: dict[str, Any]) -> str:
    asks = data.get("approval") == "ask"
    then = ": approve or deny it in the web UI" if asks else ""
    return f"\n[tool {_tool_name(data)} {_short(data.get('arguments', ''))}{then}]"


def _note_result(data: dict[str, Any]) -> str:
    if data.get("is_error"):
        return f"[tool failed: {_short(data.get('content', ''))}]"
    return "[tool done]"


# A run's tool steps, noted on stderr (the terminal cannot approve: the web UI does).
TOOL_EVENT_NOTES: dict[str, Callable[[dict[str, Any]], str]] = {
    "tool_call": _note_call,
    "tool_decision": lambda data: f"[{data.get('decision')}]",
    "tool_result": _note_result,
}


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        if response.status_code == 401:
            given = "Authorization" in response.request.headers
            message = f"{message}: check the API key" if given else NEEDS_KEY
        raise ChatError(f"{response.status_code}: {message}")
    return response.json()


def _stream_answer(
    client: httpx.Client, conversation: str, body: dict[str, Any], out: TextIO
) -> str:
    decoder = EventDecoder()
    request = client.build_request(
        "POST",
        f"/api/conversations/{conversation}/messages",
        json=body,
        headers={"Accept": "text/event-stream"},
    )
    run_id: str | None = None
    for attempt in range(RESUME_ATTEMPTS + 1):
        try:
            response = client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    response.read()
                    _json(response)
                for chunk in response.iter_raw():
                    for event in decoder.feed(chunk):
                        data = json.loads(event.data)
                        if event.type == "run":
                            run_id = data["run_id"]
                        elif event.type == "delta":
                            out.write(data["text"])
                            out.flush()
                        elif event.type in TOOL_EVENT_NOTES:
                            print(TOOL_EVENT_NOTES[event.type](data), file=sys.stderr)
                        elif event.type == "error":
                            print(f"\nssechat: {data['message']}", file=sys.stderr)
                        elif event.type == "done":
                            return str(data["status"])
            finally:
                response.close()
        except (httpx.TransportError, httpx.StreamError):
            pass
        # The stream broke off before "done": resume the run exactly where it left.
        if run_id is None or attempt == RESUME_ATTEMPTS:
            break
        decoder.close()
        time.sleep((decoder.retry or 1000) / 1000)
        request = client.build_request(
            "GET",
            f"/api/runs/{run_id}/events",
            headers={"Accept": "text/event-stream", "Last-Event-ID": decoder.last_event_id},
        )
    raise ChatError("the answer stream broke off and could not be resumed")


if __name__ == "__main__":
    sys.exit(main())
