"""Runs: a generation is a server-side job, not tied to the connection that started it.

A run calls its provider in a task of its own and writes each step to its ``RunLog`` as an SSE
event: ``run`` (first), ``reasoning`` (``{"text"}``: the model's thinking), ``delta``
(``{"text"}``: the answer), ``tool_call``, ``tool_decision`` and ``tool_result`` (``runs.tools``)
when the model calls the tools it was offered, ``error`` (``{code, message, retryable}``) and
last ``done`` (``{status, finish_reason, usage}``, plus ``tool_calls`` when the model called
tools).

A run offered tools is a loop: it streams one upstream request; if that ends in tool calls, it
decides and runs each (waiting for the user's approval where the tool asks), then streams the
next request with the calls and their results appended, for at most ``max_tool_steps``
requests that end in calls (the one after those is asked for text: ``tool_choice: none``).
Reasoning and deltas share the log's one sequence of ids. The log assigns every id; the manager
never predicts one. Subscribers follow the log from any id, so a browser that drops off and
comes back with ``Last-Event-ID`` continues exactly where it left: no gap, no duplicate, no
second upstream call. Logs come from the manager's ``log_factory`` (``MemoryRunLog`` by
default), called with the run's id.

The ``run`` event is the run task's first step, not ``start``'s: ``start`` stays synchronous and
does no IO, and a log that fails or is cancelled there ends the run through the same path as any
other failure (the answer saved as ``error`` or ``stopped``), never leaving an answer "streaming"
behind a request that raised. A subscriber that comes before it gets it live, like any event.

The answers are saved through ``AnswerStore``: one saver task per manager writes every run's
grown text in one batch every ``persist_interval`` seconds while runs are live, and each run
saves its final state at its end (with the reasoning, how long it took from its first to its
last token, and the tool calls); never once per token. A run's text and reasoning are its log's:
each token is kept once, in the log, and joined only when read (``await run.text()``,
``await run.reasoning()``).
A run ends as ``complete``, ``length``, ``stopped``, ``error`` or ``interrupted``.

This module must never import the store or the API: it sees persistence only through the small
``AnswerStore`` protocol, and must never write to the database on the per-token path.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ssechat.errors import NotFoundError, ServiceUnavailableError, SSEChatError, error_data
from ssechat.frames import FrameSource
from ssechat.providers.base import ChatMessage, GenerationParams, Provider, ToolCall, Usage
from ssechat.runs.log import MemoryRunLog, RunLog
from ssechat.runs.tools import ToolOffer, ToolRunner, ToolSteps

if TYPE_CHECKING:
    from ssechat.runs.cluster import Cluster, RunInfo
from ssechat.sse import encode, json_data

__all__ = [
    "AnswerStore",
    "LogFactory",
    "Run",
    "RunManager",
    "RunSpec",
    "RunStatus",
    "Subscription",
]

logger = logging.getLogger(__name__)

RunStatus = Literal["running", "complete", "length", "stopped", "error", "interrupted"]
OnFinish = Callable[["Run"], Awaitable[None]]
LogFactory = Callable[[str], RunLog]  # the run's id -> its (empty) log


class AnswerStore(Protocol):
    """What runs need of the store: saving their answer messages."""

    async def save_partial_answers(
        self, contents: Mapping[str, str], reasoning: Mapping[str, str] | None = None
    ) -> None:
        """Set the content of several answers (message id → text) in one write, and the
        reasoning of those in ``reasoning``; ids of messages that are gone are skipped."""
        ...

    async def update_message(
        self,
        id: str,
        *,
        content: str | None = None,
        status: str | None = None,
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
        error: str | None = None,
        reasoning: str | None = None,
        reasoning_seconds: float | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What to generate, and where the answer goes."""

    conversation_id: str
    user_message_id: str
    message_id: str
    model: str
    messages: Sequence[ChatMessage]
    params: GenerationParams = field(default_factory=GenerationParams)
    owner: str = ""
    """Whose run it is: the service lets only its owner read, follow or stop it."""
    tools: tuple[ToolOffer, ...] = ()
    """The tools the model may call (none: the request carries no ``tools``)."""


class Run:
    """One generation: its state, its log, and the task that drives it."""

    def __init__(self, id: str, spec: RunSpec, log: RunLog, tools: ToolSteps | None = None) -> None:
        self.id = id
        self.spec = spec
        self.log = log
        self.status: RunStatus = "running"
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.error: SSEChatError | None = None
        self.tools = tools if tools is not None else ToolSteps.none()
        # time.monotonic() of the first and the last reasoning delta (None: no reasoning).
        self.reasoning_started: float | None = None
        self.reasoning_ended: float | None = None
        self.created_at = time.time()
        self.finished_at: float | None = None
        self.subscribers = 0
        self.registered = False  # holds a lease in the cluster (several processes only)
        # Set once every process can find the run (its lease taken), or once it ended.
        self.ready = asyncio.Event()
        self.saved_size = 0  # the log's text size at the last periodic save
        self.task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    async def text(self) -> str:
        """The answer so far: the log's deltas, joined (the log is where a token is kept)."""
        return await self.log.text()

    async def reasoning(self) -> str:
        """The reasoning so far: the log's reasoning events, joined."""
        return await self.log.reasoning()

    @property
    def reasoning_seconds(self) -> float | None:
        """From the first reasoning token to the last (None: the model did not reason)."""
        if self.reasoning_started is None or self.reasoning_ended is None:
            return None
        return self.reasoning_ended - self.reasoning_started

    @property
    def unsaved(self) -> bool:
        return self.log.text_size != self.saved_size

    @property
    def live(self) -> bool:
        return self.status == "running"

    def outcome(self) -> tuple[str | None, Any, Any]:
        """How it ended so far: the finish reason, the usage and the error, as plain values."""
        usage = self.usage.as_dict() if self.usage else None
        return self.finish_reason, usage, error_data(self.error) if self.error else None

    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls so far, each as it is stored (``runs.tools.CallState.as_dict``)."""
        return self.tools.as_list()

    async def as_dict(self) -> dict[str, Any]:
        # The id is read before the text: with a log that may change between the two reads,
        # the text then holds at least the deltas up to that id.
        last_id = await self.log.last_id()
        finish_reason, usage, error = self.outcome()
        return {
            "id": self.id,
            "conversation_id": self.spec.conversation_id,
            "user_message_id": self.spec.user_message_id,
            "message_id": self.spec.message_id,
            "model": self.spec.model,
            "status": self.status,
            "finish_reason": finish_reason,
            "usage": usage,
            "error": error,
            "text": await self.text(),
            "last_event_id": last_id,
        }


class Subscription:
    """One client's cursor on a run's log (a ``ssechat.frames.FrameSource``) with the ``retry``
    frame in front, counted in the run's subscribers while open."""

    __slots__ = ("_closed", "_first", "_manager", "_reader", "_run")

    def __init__(self, manager: RunManager, run: Run, after: int) -> None:
        self._manager = manager
        self._run = run
        self._reader: FrameSource = run.log.reader(after)
        self._first: bytes | None = manager.retry_frame
        self._closed = False
        run.subscribers += 1

    def take(self) -> bytes:
        batch = self._reader.take()
        first = self._first
        if first is not None:
            self._first = None
            return first + batch
        return batch

    @property
    def ended(self) -> bool:
        return self._first is None and self._reader.ended

    def notify(self, waiter: asyncio.Future[None]) -> None:
        if self._first is not None:
            if not waiter.done():
                waiter.set_result(None)
        else:
            self._reader.notify(waiter)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()
            self._manager._unsubscribed(self._run)


class RunManager:
    """Starts runs, finds them by id, lets clients follow and cancel them."""

    def __init__(
        self,
        store: AnswerStore,
        *,
        retry_ms: int = 3000,
        persist_interval: float = 0.5,
        retention: float = 600.0,
        on_disconnect: Literal["continue", "cancel"] = "continue",
        disconnect_grace: float = 10.0,
        log_factory: LogFactory = MemoryRunLog,
        cluster: Cluster | None = None,
        tool_runner: ToolRunner | None = None,
        tool_approval_timeout: float = 600.0,
        tool_timeout: float = 60.0,
        max_tool_steps: int = 8,
    ) -> None:
        self.store = store
        self.tool_runner = tool_runner
        self.tool_approval_timeout = tool_approval_timeout
        self.tool_timeout = tool_timeout
        self.max_tool_steps = max_tool_steps
        self.log_factory = log_factory
        self.cluster = cluster
        if cluster is not None:
            cluster.on("cancel", self._cancel_here)
            cluster.on("tool-decision", self._decide_here)
        self.retry_frame = encode(retry=retry_ms)
        self.persist_interval = persist_interval
        self.retention = retention
        self.on_disconnect = on_disconnect
        self.disconnect_grace = disconnect_grace
        self._runs: dict[str, Run] = {}
        self._by_message: dict[str, Run] = {}
        self._live: dict[str, Run] = {}
        self._live_by_owner: dict[str, int] = {}
        self._closing = False
        self._saver: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Task[None]] = set()

    # --- lookup ---------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id!r} not found (unknown, or finished long ago)")
        return run

    def live_run_for_message(self, message_id: str) -> Run | None:
        run = self._by_message.get(message_id)
        return run if run is not None and run.live else None

    def live_runs(self) -> list[Run]:
        return list(self._live.values())

    def live_count(self, owner: str) -> int:
        """How many of ``owner``'s runs are live (a counter: no walk over every run)."""
        return self._live_by_owner.get(owner, 0)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self, spec: RunSpec, provider: Provider, on_finish: OnFinish | None = None) -> Run:
        if self._closing:
            raise SSEChatError("the server is shutting down")
        run_id = uuid.uuid4().hex
        steps = ToolSteps(
            spec.tools,
            self.tool_runner,
            approval_timeout=self.tool_approval_timeout,
            tool_timeout=self.tool_timeout,
        )
        run = Run(run_id, spec, self.log_factory(run_id), steps)
        self._runs[run.id] = run
        self._live[run.id] = run
        self._live_by_owner[spec.owner] = self._live_by_owner.get(spec.owner, 0) + 1
        self._by_message[spec.message_id] = run
        run.task = asyncio.create_task(self._drive(run, provider, on_finish), name=f"run-{run.id}")
        run.task.add_done_callback(lambda task: self._never_started(run, task, on_finish))
        if self._saver is None:
            self._saver = asyncio.create_task(self._save_periodically(), name="run-saver")
        return run

    def _never_started(
        self, run: Run, task: asyncio.Task[None], on_finish: OnFinish | None
    ) -> None:
        # A task cancelled before its first step never runs _drive (a coroutine that has not
        # started cannot catch anything): finish the run here, so that it is saved as stopped
        # and cancel() and its followers do not wait forever.
        if task.cancelled() and not run.finished.is_set():
            status: RunStatus = "interrupted" if self._closing else "stopped"
            finishing = asyncio.get_running_loop().create_task(
                self._finish(run, status, on_finish), name=f"run-{run.id}-finish"
            )
            self._finishing.add(finishing)
            finishing.add_done_callback(self._finishing.discard)

    async def _cancel_here(self, run_id: str) -> None:
        """Another process asked (``Cluster``) to stop a run: stop it if it is this one's."""
        run = self._live.get(run_id)
        if run is not None and run.task is not None:
            run.task.cancel()

    def decide(self, run_id: str, call_id: str, approve: bool) -> str:
        """Approve or deny a tool call this process's run waits for (``NotFoundError``,
        ``ConflictError`` when it is not waiting); the run writes the decision's event."""
        return self.get(run_id).tools.decide(call_id, approve)

    async def _decide_here(self, value: Any) -> None:
        """Another process passed on a decision (``Cluster``): apply it if the run is here."""
        run = self._live.get(value.get("run_id", "")) if isinstance(value, dict) else None
        if run is not None:
            with contextlib.suppress(SSEChatError):
                run.tools.decide(str(value.get("call_id")), bool(value.get("approve")))

    async def cancel(self, run_id: str) -> Run:
        """Stop a run (idempotent) and return it once its final state is saved."""
        run = self.get(run_id)
        if run.live and run.task is not None:
            run.task.cancel()
        await run.finished.wait()
        return run

    async def shutdown(self) -> None:
        """Stop every live run as ``interrupted``, saving what each has so far."""
        self._closing = True
        if self._saver is not None:
            self._saver.cancel()
        live = [run for run in self._runs.values() if run.live]
        tasks = [run.task for run in live if run.task is not None]
        for task in tasks:
            task.cancel()
        if live:
            await asyncio.gather(*tasks, return_exceptions=True)
            # A run cancelled before its first step is finished by _never_started's task.
            await asyncio.gather(*(run.finished.wait() for run in live))
        if self._finishing:  # leases let go of, saves retried: a short wait, then left
            pending = set(self._finishing)
            _, left = await asyncio.wait(pending, timeout=2.0)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)

    # --- following ------------------------------------------------------------------------

    def subscribe(self, run: Run, after: int = -1) -> Subscription:
        """What a client should get, as a frame source: ``retry``, then the log after
        ``after``, live. Close it when the client leaves."""
        return Subscription(self, run, after)

    def _unsubscribed(self, run: Run) -> None:
        run.subscribers -= 1
        if run.subscribers == 0 and run.live and self.on_disconnect == "cancel":
            asyncio.get_running_loop().call_later(
                self.disconnect_grace, self._cancel_if_abandoned, run
            )

    def _cancel_if_abandoned(self, run: Run) -> None:
        if run.subscribers == 0 and run.live and run.task is not None:
            logger.info("run %s: no subscriber for %ss, stopping it", run.id, self.disconnect_grace)
            run.task.cancel()

    # --- the run itself -------------------------------------------------------------------

    async def _drive(self, run: Run, provider: Provider, on_finish: OnFinish | None) -> None:
        spec = run.spec
        status: RunStatus = "complete"
        log = run.log
        try:
            started = {
                "run_id": run.id,
                "conversation_id": spec.conversation_id,
                "user_message_id": spec.user_message_id,
                "message_id": spec.message_id,
                "model": spec.model,
            }
            await log.append("run", json_data(started))
            if self.cluster is not None:
                # The lease first: a run no other process can find or stop must not start.
                await self.cluster.register(self._info(run))
                run.registered = True
            run.ready.set()
            messages, params = spec.messages, spec.params
            if spec.tools and self.max_tool_steps > 0:
                tools = tuple(offer.definition for offer in spec.tools)
                params = dataclasses.replace(params, tools=tools)
            steps = 0
            while True:
                calls = await self._stream(run, provider, messages, params)
                if not calls:
                    break
                offset = len(await log.text())
                if not params.tools or steps >= self.max_tool_steps:
                    for call in calls:  # asked for, not made: kept as the model wrote them
                        run.tools.record(call, offset)
                    break
                steps += 1
                messages = [*messages, *await self._run_tools(run, calls, offset)]
                if steps >= self.max_tool_steps:  # the last request: the answer, in text
                    params = dataclasses.replace(params, tool_choice="none")
            status = "length" if run.finish_reason == "length" else "complete"
        except asyncio.CancelledError:
            status = "interrupted" if self._closing else "stopped"
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        except SSEChatError as exc:  # the upstream failed, or Redis (the lease) is unreachable
            status = "error"
            run.error = exc
        except Exception:
            logger.exception("run %s failed", run.id)
            status = "error"
            run.error = SSEChatError("the run failed unexpectedly; see the server log")
        await self._finish(run, status, on_finish)

    async def _stream(
        self,
        run: Run,
        provider: Provider,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
    ) -> tuple[ToolCall, ...]:
        """One upstream request, streamed into the run's log; the tool calls it ended with."""
        log = run.log
        calls: tuple[ToolCall, ...] = ()
        stream = provider.stream(messages, run.spec.model, params)
        async with contextlib.aclosing(stream):
            async for delta in stream:
                if delta.reasoning:
                    # Before the text: a read may end the thinking and begin the answer.
                    now = time.monotonic()
                    if run.reasoning_started is None:
                        run.reasoning_started = now
                    run.reasoning_ended = now
                    await log.append_reasoning(delta.reasoning)
                if delta.text:
                    # The hot path: one append per read; no join, no encoding (readers do).
                    await log.append_delta(delta.text)
                if delta.finish_reason is not None:
                    run.finish_reason = delta.finish_reason
                if delta.usage is not None:
                    run.usage = delta.usage
                if delta.tool_calls:
                    calls += delta.tool_calls
        return calls

    async def _run_tools(
        self, run: Run, calls: tuple[ToolCall, ...], offset: int
    ) -> list[ChatMessage]:
        """Decide and run a step's calls, in order; the messages the next request appends: the
        assistant's text of this step with its calls, then each call's result."""
        text = await run.log.text()
        start = max((c.offset for c in run.tools.calls.values()), default=0)
        states = [await run.tools.run_call(call, offset, run.log) for call in calls]
        made = tuple(ToolCall(s.id, s.name, s.arguments) for s in states)
        answers = [
            ChatMessage("tool", s.result["content"] if s.result else "", tool_call_id=s.id)
            for s in states
        ]
        return [ChatMessage("assistant", text[start:offset], tool_calls=made), *answers]

    async def _save_periodically(self) -> None:
        """Every ``persist_interval``, save what every live run added, in one write; end when
        no run is live (the next start begins another saver)."""
        try:
            while True:
                await asyncio.sleep(self.persist_interval)
                if not self._live:
                    return
                grown = [run for run in self._live.values() if run.unsaved]
                if not grown:
                    continue
                # Sizes first: a text read after its size holds at least that much.
                sizes = [run.log.text_size for run in grown]
                contents = {run.spec.message_id: await run.text() for run in grown}
                reasoning = {
                    run.spec.message_id: await run.reasoning()
                    for run in grown
                    if run.reasoning_started is not None
                }
                try:
                    if reasoning:
                        await self.store.save_partial_answers(contents, reasoning)
                    else:
                        await self.store.save_partial_answers(contents)
                except Exception:
                    logger.exception("could not save %d partial answer(s)", len(contents))
                    continue
                for run, size in zip(grown, sizes, strict=True):
                    run.saved_size = size
        finally:
            if self._saver is asyncio.current_task():
                self._saver = None

    async def _finish(self, run: Run, status: RunStatus, on_finish: OnFinish | None) -> None:
        run.status = status
        if self._live.pop(run.id, None) is not None:
            left = self._live_by_owner[run.spec.owner] - 1
            if left:
                self._live_by_owner[run.spec.owner] = left
            else:
                del self._live_by_owner[run.spec.owner]
        run.finished_at = time.time()
        log = run.log
        tool_calls = run.tools.as_list() or None
        reasoned = run.reasoning_started is not None
        final: dict[str, Any] = {
            "content": await log.text(),
            "status": status,
            "finish_reason": run.finish_reason,
            "usage": run.usage.as_dict() if run.usage else None,
            "error": run.error.message if run.error else None,
            "reasoning": await log.reasoning() if reasoned else None,
            "reasoning_seconds": run.reasoning_seconds,
            "tool_calls": tool_calls,
        }
        try:
            await self.store.update_message(run.spec.message_id, **final)
            if on_finish is not None:
                await on_finish(run)
        except NotFoundError:
            logger.info("run %s: its conversation was deleted; nothing to save", run.id)
        except ServiceUnavailableError:
            # The database is down: the answer is saved when it is back, not lost.
            self._background(self._save_later(run, final), f"run-{run.id}-save")
        except Exception:
            logger.exception("run %s: could not save the final answer", run.id)
        done: dict[str, Any] = {
            "status": status,
            "finish_reason": run.finish_reason,
            "usage": run.usage.as_dict() if run.usage else None,
        }
        if tool_calls is not None:
            done["tool_calls"] = tool_calls
        try:
            if run.error is not None:
                await log.append("error", json_data(error_data(run.error)))
            await log.append("done", json_data(done))
            await log.close()
        except Exception:
            # A log that failed (a networked one) must not keep cancel() waiting forever.
            logger.exception("run %s: could not end its event log", run.id)
        finally:
            run.ready.set()
            run.finished.set()
            if run.registered:  # in the background: the run's end must not wait on Redis
                self._background(self._release(run), f"run-{run.id}-release")
            if not self._closing:
                asyncio.get_running_loop().call_later(self.retention, self._forget, run)

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _save_later(self, run: Run, final: dict[str, Any]) -> None:
        """Save a run's final answer once the database answers again (for up to the run's
        retention), trying every few seconds."""
        logger.warning(
            "run %s: the database is unreachable; its answer is kept to save later", run.id
        )
        deadline = time.monotonic() + self.retention
        delay = 0.5
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            try:
                await self.store.update_message(run.spec.message_id, **final)
            except ServiceUnavailableError:
                continue
            except NotFoundError:
                return
            logger.warning("run %s: its answer was saved once the database was back", run.id)
            return
        logger.error("run %s: the database stayed unreachable; its answer was not saved", run.id)

    def _info(self, run: Run) -> RunInfo:
        from ssechat.runs.cluster import RunInfo  # only with a cluster: it needs Redis's client

        assert self.cluster is not None
        spec = run.spec
        return RunInfo(
            run_id=run.id,
            owner=spec.owner,
            conversation_id=spec.conversation_id,
            user_message_id=spec.user_message_id,
            message_id=spec.message_id,
            model=spec.model,
            node=self.cluster.node,
        )

    async def _release(self, run: Run) -> None:
        """Let go of the run's lease once its ``done`` is in Redis (or after a while: if Redis
        is down, a sweeper later finds the log ended, or ends it)."""
        assert self.cluster is not None
        flushed = getattr(run.log, "flushed", None)
        if flushed is not None:
            try:
                await asyncio.wait_for(flushed(), timeout=self.cluster.lease / 2)
            except TimeoutError:
                logger.warning("run %s: its end is not in Redis yet; keeping its lease", run.id)
                return
        await self.cluster.finished(self._info(run))

    def _forget(self, run: Run) -> None:
        self._runs.pop(run.id, None)
        if self._by_message.get(run.spec.message_id) is run:
            del self._by_message[run.spec.message_id]
