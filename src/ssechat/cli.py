"""The ``ssechat`` command line: ``serve`` starts the server, ``chat`` talks to a running one.

``ssechat chat`` is a real client of the HTTP API built on ``ssechat.sse``: it streams the answer
to the terminal as it is generated, and if the connection drops it resumes the run with
``Last-Event-ID``, so nothing is printed twice or lost. This module must never contain server
logic: it parses flags into ``Settings`` and hands them on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import httpx

from ssechat import __version__
from ssechat.config import Settings
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

    chat = commands.add_parser("chat", help="ask a running server and stream the answer")
    chat.add_argument("question", help="what to ask")
    chat.add_argument("--conversation", "-c", help="continue this conversation (an id)")
    chat.add_argument("--model", help="model to answer with")
    chat.add_argument("--url", help="the server (default http://127.0.0.1:8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = Settings.from_env(
                host=args.host, port=args.port, database_url=args.database_url, model=args.model
            )
            return serve(settings)
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"ssechat: {exc}", file=sys.stderr)
        return 2
    url = args.url or f"http://{settings.host}:{settings.port}"
    return chat(url, args.question, conversation=args.conversation, model=args.model)


def serve(settings: Settings) -> int:
    import uvicorn

    from ssechat.api import create_app

    where = "the demo model (offline)" if not settings.has_upstream else "an OpenAI-compatible API"
    print(
        f"ssechat {__version__} on http://{settings.host}:{settings.port}, answering with {where}",
        flush=True,
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=3,
    )
    return 0


# --- the chat client --------------------------------------------------------------------------


class ChatError(Exception):
    pass


def chat(
    url: str,
    question: str,
    *,
    conversation: str | None,
    model: str | None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    try:
        with httpx.Client(base_url=url, timeout=httpx.Timeout(30.0, read=None)) as client:
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


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
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
