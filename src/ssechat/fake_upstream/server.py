"""``FakeUpstream``: the fake's connections, its routes, and the records tests observe.

Per connection, one task reads the socket for the connection's whole life (requests, then EOF or
reset) while a second one answers the requests in order: so a client that leaves is recorded the
moment its FIN or RST arrives, even while the answer is stalled or paced, and the answer stops.
HTTP support is the minimum a client such as httpx needs: request line, headers, a
Content-Length body, keep-alive, chunked responses. A client's EOF counts as the client leaving
(clients that half-close their side after a request are not supported).

This module handles connections, requests and records. ``answers`` says what a chat request is
answered with and at what pace, ``faults`` which faults are played on the way; ``_chat`` is
where the three meet: it chooses the scenario, then lets ``faults`` and ``answers`` write.

This is a test and benchmark tool: it must never be used as a real provider, never reach the
network beyond the socket it listens on, and never be exposed beyond loopback in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ssechat.fake_upstream import answers, http11, wire
from ssechat.fake_upstream.answers import Clock
from ssechat.fake_upstream.faults import StatusFaults, StreamFaults
from ssechat.fake_upstream.scenario import Scenario, parse_model

__all__ = ["ConnectionRecord", "FakeUpstream", "RecordedRequest"]

_T = TypeVar("_T")

logger = logging.getLogger(__name__)

_HEAD_LIMIT = 64 * 1024
_BACKLOG = 4096
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")


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
    ``connections`` record everything, in arrival order. ``clock`` (default: the event loop's)
    is the time pacing and timed stalls follow; a test may set its own to watch each wait the
    fake makes, without timing it.
    """

    def __init__(
        self,
        default: Scenario | None = None,
        *,
        fixtures_dir: str | os.PathLike[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.default = default if default is not None else Scenario()
        self.clock = clock
        self.requests: list[RecordedRequest] = []
        self.connections: list[ConnectionRecord] = []
        self.host = ""
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[Scenario] = deque()
        self._statuses = StatusFaults()
        self._replays = answers.Replays(Path(fixtures_dir) if fixtures_dir is not None else None)
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
        ``upstream.run(upstream.wait_closed(0), timeout=10)``.
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

    @property
    def fixtures_dir(self) -> Path | None:
        """The directory of recorded ``.sse`` streams that ``replay`` scenarios play."""
        return self._replays.fixtures_dir

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
                await http11.send_json(writer, 200, answers.models_body(self._replays), keep_alive)
                return keep_alive
            message = f"fake upstream: no route for {request.method} {path}"
            await http11.send_json(writer, 404, wire.error_body(404, message), keep_alive)
            return keep_alive
        finally:
            record.finished_at = time.monotonic()
            record.finished.set()

    # --- chat completions: where the scenario, its faults and its answer meet ------------------

    def _choose(self, model: str) -> Scenario:
        with contextlib.suppress(IndexError):
            return self._queue.popleft()
        parsed = parse_model(model)
        return parsed if parsed is not None else self.default

    async def _chat(
        self, record: RecordedRequest, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> bool:
        body = record.body
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            message = "fake upstream: the body must be a JSON object with a model"
            await http11.send_json(writer, 400, wire.error_body(400, message), keep_alive)
            return keep_alive
        try:
            scenario = self._choose(body["model"])
        except ValueError as exc:
            await http11.send_json(writer, 400, wire.error_body(400, str(exc)), keep_alive)
            return keep_alive
        record.scenario = scenario
        if self._statuses.take(scenario):
            await StatusFaults.send(writer, scenario, keep_alive)
            return keep_alive
        replay: list[bytes] | None = None
        if scenario.mode == "replay":
            assert scenario.replay is not None
            replay = self._replays.frames(scenario.replay)
            if replay is None:
                message = f"fake upstream: no recording named {scenario.replay!r}"
                await http11.send_json(writer, 404, wire.error_body(404, message), keep_alive)
                return keep_alive
        number = len(self.requests)
        completion_id = f"chatcmpl-fake{number}"
        clock = self.clock
        faults = StreamFaults(
            scenario,
            writer,
            keep_alive,
            reset=functools.partial(self._reset, record.connection, writer),
            sleep=asyncio.sleep if clock is None else clock.sleep,
        )
        if body.get("stream") is not True:
            return await answers.complete(
                writer, body, scenario, completion_id, replay, faults, keep_alive
            )
        if replay is not None:
            frames: answers.Frames = ((frame, True) for frame in replay)
            lead = 0
        else:
            frames, lead = answers.generated_frames(scenario, body, completion_id), 1
        return await answers.stream(
            writer,
            frames,
            lead=lead,
            faults=faults,
            clock=clock,
            request_id=f"req_fake{number}",
            keep_alive=keep_alive,
        )

    async def _reset(self, conn: ConnectionRecord, writer: asyncio.StreamWriter) -> None:
        await writer.drain()
        self._mark_closed(conn, "reset")
        await http11.reset(writer)
