"""``FakeUpstream``: a raw asyncio HTTP/1.1 server that plays an OpenAI-compatible API.

Per connection, one task reads the socket for the connection's whole life (requests, then EOF or
reset) while a second one answers the requests in order: so a client that leaves is recorded the
moment its FIN or RST arrives, even while the answer is stalled or paced, and the answer stops.
HTTP support is the minimum a client such as httpx needs: request line, headers, a
Content-Length body, keep-alive, chunked responses. A client's EOF counts as the client leaving
(clients that half-close their side after a request are not supported).

This is a test and benchmark tool: it must never be used as a real provider, never reach the
network beyond the socket it listens on, and never be exposed beyond loopback in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ssechat.fake_upstream import http11, wire
from ssechat.fake_upstream.scenario import Scenario, parse_model

__all__ = ["ConnectionRecord", "FakeUpstream", "RecordedRequest"]

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

_HEAD_LIMIT = 64 * 1024
_BACKLOG = 4096
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")
_DEFAULT_STREAM_ERROR = "The server had an error while processing your request."


@dataclass(eq=False)
class ConnectionRecord:
    """One accepted TCP connection; ``closed_at`` is ``time.monotonic()`` when it ended.

    ``closed_by`` is ``"client"`` (its FIN or RST arrived), ``"server"`` (the fake closed it:
    ``Connection: close``, a bad request, ``stop()``) or ``"reset"`` (a reset fault).
    """

    id: int
    opened_at: float
    closed_at: float | None = None
    closed_by: str | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


@dataclass(eq=False)
class RecordedRequest:
    """One request as the fake received it; ``body`` is the parsed JSON (``None`` if not JSON).

    ``finished`` is set (and ``finished_at`` stamped) when the fake stops answering it: the
    answer was written, or cut short because the connection ended.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    arrived_at: float
    connection: ConnectionRecord = field(repr=False)
    scenario: Scenario | None = None
    finished_at: float | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def closed_at(self) -> float | None:
        """When the connection that carried this request closed."""
        return self.connection.closed_at


class FakeUpstream:
    """An OpenAI-compatible upstream for tests, demos and benchmarks; see the package docstring.

    Scenario choice for a chat request: the next queued one (``enqueue``), else the one the
    request's ``fake-…`` model name describes, else ``default``. ``requests`` and
    ``connections`` record everything, in arrival order.
    """

    def __init__(
        self,
        default: Scenario | None = None,
        *,
        fixtures_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.default = default if default is not None else Scenario()
        self.fixtures_dir = Path(fixtures_dir) if fixtures_dir is not None else None
        self.requests: list[RecordedRequest] = []
        self.connections: list[ConnectionRecord] = []
        self.host = ""
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[Scenario] = deque()
        self._failures: Counter[Scenario] = Counter()
        self._replays: dict[str, list[bytes]] = {}
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._responders: set[asyncio.Task[None]] = set()
        self._writers: dict[ConnectionRecord, asyncio.StreamWriter] = {}
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(
            self._on_connect,
            host,
            port,
            limit=_HEAD_LIMIT,
            reuse_address=True,
            # A benchmark opens a thousand connections at once; asyncio's default backlog of
            # 100 would drop most SYNs and stall them for seconds of TCP retransmission.
            backlog=_BACKLOG,
        )
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Stop listening, cut every connection, and wait until all handlers are gone."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for conn, writer in list(self._writers.items()):
            self._mark_closed(conn, "server")
            writer.transport.abort()
        # With their transports gone the readers see EOF and the handlers end by themselves
        # (cancelling them would make asyncio's stream machinery log an error); the responders
        # may be stalled forever, so they are cancelled.
        for task in list(self._responders):
            task.cancel()
        pending = self._handlers | self._responders
        if pending:
            _, late = await asyncio.wait(pending, timeout=5)
            for task in late:
                task.cancel()
        await server.wait_closed()

    async def __aenter__(self) -> FakeUpstream:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def running_in_thread(
        cls,
        default: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fixtures_dir: str | os.PathLike[str] | None = None,
    ) -> Iterator[FakeUpstream]:
        """Run a fake upstream on its own event loop in a thread, for synchronous tests.

        ``enqueue`` and reading ``requests`` are safe from the calling thread; the ``wait_*``
        coroutines run on the fake's loop through ``run``:
        ``upstream.run(upstream.wait_closed(0), timeout=1)``.
        """
        upstream = cls(default, fixtures_dir=fixtures_dir)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(upstream.start(host, port), loop).result(10)
            try:
                yield upstream
            finally:
                asyncio.run_coroutine_threadsafe(upstream.stop(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run ``coroutine`` on the fake's loop from another thread and return its result."""
        if self.loop is None:
            coroutine.close()
            raise RuntimeError("the fake upstream is not started")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("the fake upstream is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    # --- driving and observing ----------------------------------------------------------------

    def enqueue(self, *scenarios: Scenario) -> None:
        """Answer the next chat requests with these scenarios, one request each, in order."""
        self._queue.extend(scenarios)

    async def wait_requests(self, count: int) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests have arrived."""
        while len(self.requests) < count:
            await self._next_change()
        return self.requests

    async def wait_closed(self, request: int | RecordedRequest = -1) -> float:
        """Wait until the connection that carried ``request`` (an index, default the latest
        request) closed; return its ``closed_at``."""
        if isinstance(request, int):
            await self.wait_requests(request + 1 if request >= 0 else 1)
            request = self.requests[request]
        conn = request.connection
        await conn.closed.wait()
        assert conn.closed_at is not None
        return conn.closed_at

    async def _next_change(self) -> None:
        await self._changed.wait()

    def _pulse(self) -> None:
        # Wake every waiter, then arm a fresh event for the next change.
        self._changed.set()
        self._changed = asyncio.Event()

    def _mark_closed(self, conn: ConnectionRecord, by: str) -> None:
        if conn.closed_at is None:
            conn.closed_at = time.monotonic()
            conn.closed_by = by
            conn.closed.set()
            self._pulse()

    # --- connections --------------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = ConnectionRecord(id=next(self._ids), opened_at=time.monotonic())
        self.connections.append(conn)
        self._writers[conn] = writer
        http11.set_nodelay(writer)
        pending: asyncio.Queue[http11.Request | http11.BadRequest] = asyncio.Queue()
        responder = asyncio.create_task(self._respond_loop(conn, pending, writer))
        self._responders.add(responder)
        responder.add_done_callback(self._responders.discard)
        try:
            while True:
                try:
                    request = await http11.read_request(reader)
                except http11.BadRequest as exc:
                    pending.put_nowait(exc)
                    # The responder answers 400 and closes; keep reading only to see the end.
                    while await reader.read(65536):
                        pass
                    break
                if request is None:
                    break
                pending.put_nowait(request)
        except (OSError, asyncio.IncompleteReadError):
            pass  # reset, or EOF in the middle of a request: the client is gone either way
        except asyncio.CancelledError:
            pass  # stop() gave up waiting; nobody awaits this task, so end it quietly
        finally:
            self._mark_closed(conn, "client")
            responder.cancel()
            writer.transport.abort()
            self._writers.pop(conn, None)
            self._handlers.discard(task)

    async def _respond_loop(
        self,
        conn: ConnectionRecord,
        pending: asyncio.Queue[http11.Request | http11.BadRequest],
        writer: asyncio.StreamWriter,
    ) -> None:
        try:
            while True:
                item = await pending.get()
                if isinstance(item, http11.BadRequest):
                    body = wire.error_body(400, f"fake upstream: {item}")
                    await http11.send_json(writer, 400, body, keep_alive=False)
                    keep_alive = False
                else:
                    keep_alive = await self._respond(conn, item, writer)
                if not keep_alive:
                    if not writer.transport.is_closing():
                        self._mark_closed(conn, "server")
                        writer.close()
                    return
        except OSError:
            pass  # the client left mid-answer; the reader records when
        except Exception:
            logger.exception("fake upstream: unexpected error; closing the connection")
            self._mark_closed(conn, "server")
            writer.transport.abort()

    async def _respond(
        self, conn: ConnectionRecord, request: http11.Request, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; return whether the connection may stay open."""
        path = request.target.partition("?")[0]
        body: Any = None
        if request.body:
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.loads(request.body)
        record = RecordedRequest(
            request.method, path, request.headers, body, time.monotonic(), conn
        )
        conn.requests.append(record)
        self.requests.append(record)
        self._pulse()
        keep_alive = request.keep_alive
        try:
            if path in _CHAT_PATHS and request.method == "POST":
                return await self._chat(record, writer, keep_alive)
            if path in _MODELS_PATHS and request.method == "GET":
                await http11.send_json(writer, 200, self._models_body(), keep_alive)
                return keep_alive
            message = f"fake upstream: no route for {request.method} {path}"
            await http11.send_json(writer, 404, wire.error_body(404, message), keep_alive)
            return keep_alive
        finally:
            record.finished_at = time.monotonic()
            record.finished.set()

    def _models_body(self) -> bytes:
        ids = ["fake-echo", "fake-tokens-20"]
        if self.fixtures_dir is not None and self.fixtures_dir.is_dir():
            ids += [f"fake-replay-{p.stem}" for p in self.fixtures_dir.glob("*.sse")]
        data = [{"id": i, "object": "model", "created": 0, "owned_by": "fake"} for i in ids]
        return orjson.dumps({"object": "list", "data": sorted(data, key=lambda m: m["id"])})

    # --- chat completions ---------------------------------------------------------------------

    def _choose(self, model: str) -> Scenario:
        with contextlib.suppress(IndexError):
            return self._queue.popleft()
        parsed = parse_model(model)
        return parsed if parsed is not None else self.default

    def _take_failure(self, scenario: Scenario) -> bool:
        if scenario.status is None:
            return False
        if scenario.status_times is None:
            return True
        if self._failures[scenario] >= scenario.status_times:
            return False
        self._failures[scenario] += 1
        return True

    async def _chat(
        self, record: RecordedRequest, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool:
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            message = "fake upstream: the body must be a JSON object with a model"
            await http11.send_json(writer, 400, wire.error_body(400, message), keep_alive)
            return keep_alive
        model: str = body["model"]
        try:
            scenario = self._choose(model)
        except ValueError as exc:
            await http11.send_json(writer, 400, wire.error_body(400, str(exc)), keep_alive)
            return keep_alive
        record.scenario = scenario
        if scenario.status is not None and self._take_failure(scenario):
            headers = list(scenario.headers)
            if scenario.retry_after is not None:
                headers.append(("retry-after", scenario.retry_after))
            if scenario.retry_after_ms is not None:
                headers.append(("retry-after-ms", scenario.retry_after_ms))
            error = wire.error_body(scenario.status, scenario.error_message)
            await http11.send_json(writer, scenario.status, error, keep_alive, headers)
            return keep_alive
        replay: list[bytes] | None = None
        if scenario.mode == "replay":
            assert scenario.replay is not None
            replay = self._replay_frames(scenario.replay)
            if replay is None:
                message = f"fake upstream: no recording named {scenario.replay!r}"
                await http11.send_json(writer, 404, wire.error_body(404, message), keep_alive)
                return keep_alive
        completion_id = f"chatcmpl-fake{len(self.requests)}"
        if body.get("stream") is not True:
            return await self._complete(record, writer, scenario, completion_id, replay, keep_alive)
        if replay is not None:
            frames: Iterator[tuple[bytes, bool]] = ((frame, True) for frame in replay)
            lead = 0
        else:
            frames, lead = _generated_frames(scenario, body, completion_id), 1
        return await self._stream(record, writer, scenario, frames, lead, keep_alive)

    def _replay_frames(self, name: str) -> list[bytes] | None:
        frames = self._replays.get(name)
        if frames is None:
            stem = name.removesuffix(".sse")
            if self.fixtures_dir is None or not stem or "/" in stem or "\\" in stem:
                return None
            path = self.fixtures_dir / f"{stem}.sse"
            try:
                frames = wire.split_frames(path.read_bytes())
            except OSError:
                return None
            self._replays[name] = frames
        return frames

    async def _complete(
        self,
        record: RecordedRequest,
        writer: asyncio.StreamWriter,
        scenario: Scenario,
        completion_id: str,
        replay: list[bytes] | None,
        keep_alive: bool,
    ) -> bool:
        """``stream: false``: honours stall and reset (before answering), not the other faults."""
        body: dict[str, Any] = record.body
        if scenario.stall_after is not None:
            await _stall(scenario.stall_for)
        if scenario.reset_after is not None:
            await self._reset(record.connection, writer)
            return False
        if replay is not None:
            text, finish, usage = wire.replay_summary(replay)
        else:
            tokens, finish, prompt = _answer(scenario, body)
            text = "".join(tokens)
            usage = wire.usage_dict(prompt, len(tokens))
        payload = wire.completion_body(completion_id, body["model"], text, finish, usage)
        await http11.send_json(writer, 200, payload, keep_alive)
        return keep_alive

    async def _stream(
        self,
        record: RecordedRequest,
        writer: asyncio.StreamWriter,
        scenario: Scenario,
        frames: Iterator[tuple[bytes, bool]],
        lead: int,
        keep_alive: bool,
    ) -> bool:
        headers = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("transfer-encoding", "chunked"),
            ("cache-control", "no-cache"),
            ("x-request-id", f"req_fake{len(self.requests)}"),
            ("connection", "keep-alive" if keep_alive else "close"),
        ]
        writer.write(wire.http_head(200, headers))
        rng = random.Random(scenario.split_seed) if scenario.split_seed is not None else None
        interval = scenario.interval
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        sent = 0
        for frame, paced in frames:
            end = await self._fault(record, writer, sent - lead, final=False, keep=keep_alive)
            if end is not None:
                return end
            if scenario.omit_done and wire.is_done(frame):
                continue
            if paced and interval:
                next_at += interval
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await http11.write_frame(writer, frame, rng, scenario.chop)
            sent += 1
        end = await self._fault(record, writer, sent - lead, final=True, keep=keep_alive)
        if end is not None:
            return end
        writer.write(wire.CHUNKED_END)
        await writer.drain()
        return keep_alive

    async def _fault(
        self,
        record: RecordedRequest,
        writer: asyncio.StreamWriter,
        position: int,
        *,
        final: bool,
        keep: bool,
    ) -> bool | None:
        """Run the fault due at ``position`` tokens; return None to go on, else keep-alive."""
        scenario = record.scenario
        assert scenario is not None

        def due(at: int | None) -> bool:
            return at is not None and (position == at or (final and position < at))

        if due(scenario.stall_after):
            await _stall(scenario.stall_for)
        if due(scenario.error_after):
            message = scenario.error_message or _DEFAULT_STREAM_ERROR
            await http11.write_frame(writer, wire.error_frame(message), None, None)
            if scenario.done_after_error:
                await http11.write_frame(writer, wire.DONE_FRAME, None, None)
            writer.write(wire.CHUNKED_END)
            await writer.drain()
            return keep
        if due(scenario.reset_after):
            await self._reset(record.connection, writer)
            return False
        return None

    async def _reset(self, conn: ConnectionRecord, writer: asyncio.StreamWriter) -> None:
        await writer.drain()
        self._mark_closed(conn, "reset")
        await http11.reset(writer)


def _generated_frames(
    scenario: Scenario, body: dict[str, Any], completion_id: str
) -> Iterator[tuple[bytes, bool]]:
    tokens, finish, prompt = _answer(scenario, body)
    chunks = wire.ChunkWriter(completion_id, body["model"])
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    yield chunks.role(), False
    for token in tokens:
        yield chunks.content(token), True
    yield chunks.finish(finish), False
    if include_usage:
        yield chunks.usage(prompt, len(tokens)), False
    yield wire.DONE_FRAME, False


def _answer(scenario: Scenario, body: dict[str, Any]) -> tuple[list[str], str, int]:
    """The answer's tokens, its finish reason and the prompt's size, for generated modes."""
    messages = body.get("messages")
    if scenario.mode == "echo":
        tokens = wire.word_tokens(wire.last_user_text(messages))
    elif scenario.text is not None:
        tokens = wire.word_tokens(scenario.text)
    else:
        tokens = list(wire.generated_tokens(scenario.tokens))
    finish = scenario.finish_reason
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < len(tokens):
        tokens, finish = tokens[:limit], "length"
    return tokens, finish, wire.count_words(messages)


async def _stall(seconds: float | None) -> None:
    if seconds is None:
        await asyncio.get_running_loop().create_future()  # until cancelled
    else:
        await asyncio.sleep(seconds)
