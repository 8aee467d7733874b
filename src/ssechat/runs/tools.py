"""A run's tool calls: what the model may call, the state of each call, and how a call is
decided and run, as run events.

A run offered tools (``RunSpec.tools``: ``ToolOffer``s, made by the service from the
conversation's choice) may end an upstream request with tool calls. For each call, in order,
``ToolSteps.run_call`` writes ``tool_call`` (``{id, name, arguments, server, tool, approval,
offset}``); a call whose tool asks waits for a decision (``decide``, from any process) within
the approval timeout and writes ``tool_decision`` (``{id, decision}``); an approved or
``always`` call runs through the ``ToolRunner`` within the tool's timeout; every call ends with
``tool_result`` (``{id, content, is_error}``). A call that is denied, expires, names no offered
tool or has arguments that are not a JSON object gets an error result: that is what the model is
told, and the answer goes on. ``offset`` is the answer's length (in code points) when the call
was made, so that the UI and the next turn's context place it in the text.

The events go through the run's log like any other, so a client that reloads, reconnects or
follows from another process sees the same calls; ``calls_from_events`` rebuilds their state
from a log (a run another process drives).

This module never imports the tools package, the store or the API: the tool servers are behind
the small ``ToolRunner`` protocol, which ``ssechat.tools.MCPServers`` meets.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from ssechat.errors import ConflictError, NotFoundError
from ssechat.providers.base import ToolCall
from ssechat.runs.log import RunLog
from ssechat.sse import json_data

__all__ = [
    "TOOL_EVENTS",
    "CallState",
    "ToolOffer",
    "ToolRunner",
    "ToolSteps",
    "calls_from_events",
]

Approval = Literal["ask", "always"]
Decision = Literal["approved", "denied", "expired"]

TOOL_EVENTS = ("tool_call", "tool_decision", "tool_result")

MAX_RESULT_CHARS = 100_000
"""A tool's result is cut to this many characters: it goes upstream on every later turn."""

DENIED = "The user denied this tool call; it was not run."
EXPIRED = "No one approved this tool call in time; it was not run."


@dataclass(frozen=True, slots=True)
class ToolOffer:
    """A tool the model may call in this run."""

    function: str
    """The function name the model sees (``ssechat.tools.function_name``)."""
    server: str
    tool: str
    approval: Approval
    definition: Mapping[str, Any]
    """What the request carries: ``{"type": "function", "function": {name, description,
    parameters}}``."""
    timeout: float | None = None
    """This tool's limit per call (None: the manager's)."""


class ToolOutcomeLike(Protocol):
    @property
    def content(self) -> str: ...

    @property
    def is_error(self) -> bool: ...


class ToolRunner(Protocol):
    """What runs need of the tool servers: one call, within a timeout. A failure of the tool or
    its server is an error outcome, never an exception; cancelling the caller cancels the call.
    The ``timeout`` is the runner's to apply: running out of it is an error outcome the model
    reads, not a cancellation of the run."""

    async def call(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - an outcome, not a cancel: see above
    ) -> ToolOutcomeLike: ...


@dataclass(slots=True)
class CallState:
    """One tool call of a run, and what became of it (stored on the answer message as
    ``as_dict()``)."""

    id: str
    name: str
    arguments: str
    server: str | None
    tool: str | None
    approval: Approval | None
    offset: int
    decision: Decision | None = None
    result: dict[str, Any] | None = None
    waiter: asyncio.Future[bool] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "server": self.server,
            "tool": self.tool,
            "approval": self.approval,
            "decision": self.decision,
            "offset": self.offset,
            "result": self.result,
        }

    @property
    def waiting(self) -> bool:
        return self.waiter is not None and not self.waiter.done()


class ToolSteps:
    """A run's tool calls: their states, in call order, and the decisions it waits for."""

    __slots__ = ("_approval_timeout", "_by_function", "_runner", "_tool_timeout", "calls")

    def __init__(
        self,
        offers: Iterable[ToolOffer],
        runner: ToolRunner | None,
        *,
        approval_timeout: float,
        tool_timeout: float,
    ) -> None:
        self._by_function = {offer.function: offer for offer in offers}
        self._runner = runner
        self._approval_timeout = approval_timeout
        self._tool_timeout = tool_timeout
        self.calls: dict[str, CallState] = {}

    @classmethod
    def none(cls) -> ToolSteps:
        """A run offered no tools: the calls its model makes anyway are only recorded."""
        return cls((), None, approval_timeout=0.0, tool_timeout=0.0)

    def as_list(self) -> list[dict[str, Any]]:
        return [call.as_dict() for call in self.calls.values()]

    def record(self, call: ToolCall, offset: int) -> CallState:
        """A call the run does not make (no tools offered, or past the step limit): kept on
        the answer as the model asked for it, with no result."""
        state = CallState(call.id, call.name, call.arguments, None, None, None, offset)
        self.calls[self._unique(call.id)] = state
        return state

    async def run_call(self, call: ToolCall, offset: int, log: RunLog) -> CallState:
        """Decide and run one call, writing its events; its state holds the result."""
        offer = self._by_function.get(call.name)
        state = CallState(
            call.id,
            call.name,
            call.arguments,
            offer.server if offer else None,
            offer.tool if offer else None,
            offer.approval if offer else None,
            offset,
        )
        state.id = self._unique(call.id)
        self.calls[state.id] = state
        await log.append(
            "tool_call",
            json_data(
                {k: v for k, v in state.as_dict().items() if k not in ("decision", "result")}
            ),
        )
        if offer is None:
            return await self._result(state, log, f"No tool named {call.name!r} is offered.", True)
        if offer.approval == "ask":
            decision = await self._decision(state)
            state.decision = decision
            await log.append("tool_decision", json_data({"id": state.id, "decision": decision}))
            if decision != "approved":
                return await self._result(
                    state, log, DENIED if decision == "denied" else EXPIRED, True
                )
        try:
            arguments = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            message = "The arguments are not a JSON object; the tool was not run."
            return await self._result(state, log, message, True)
        if self._runner is None:  # pragma: no cover - offers come only with a runner
            return await self._result(state, log, "No tool server is configured.", True)
        outcome = await self._runner.call(
            offer.server, offer.tool, arguments, timeout=offer.timeout or self._tool_timeout
        )
        return await self._result(state, log, outcome.content, outcome.is_error)

    def decide(self, call_id: str, approve: bool) -> Decision:
        """Approve or deny a call that waits for it; ``NotFoundError`` for a call this run has
        not made, ``ConflictError`` for one that is not waiting."""
        state = self.calls.get(call_id)
        if state is None:
            raise NotFoundError(f"tool call {call_id!r} not found in this run")
        if state.waiter is None or state.waiter.done():
            raise ConflictError(
                "this tool call is not waiting for a decision "
                f"({state.decision or 'it does not ask'})"
            )
        state.waiter.set_result(approve)
        return "approved" if approve else "denied"

    async def _decision(self, state: CallState) -> Decision:
        state.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._approval_timeout):
                return "approved" if await state.waiter else "denied"
        except TimeoutError:
            return "expired"
        finally:
            if not state.waiter.done():
                state.waiter.cancel()

    async def _result(
        self, state: CallState, log: RunLog, content: str, is_error: bool
    ) -> CallState:
        if len(content) > MAX_RESULT_CHARS:
            cut = len(content) - MAX_RESULT_CHARS
            content = content[:MAX_RESULT_CHARS] + f"\n\n[… {cut} more characters cut]"
        state.result = {"content": content, "is_error": is_error}
        await log.append("tool_result", json_data({"id": state.id, **state.result}))
        return state

    def _unique(self, call_id: str) -> str:
        # Ids come from the model: a second step that reuses one must not overwrite the first.
        if call_id not in self.calls:
            return call_id
        n = 2
        while f"{call_id}~{n}" in self.calls:
            n += 1
        return f"{call_id}~{n}"


def calls_from_events(events: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """The tool calls' states (``CallState.as_dict()`` shape) from a run's events, as another
    process sees them: the ``tool_call``, ``tool_decision`` and ``tool_result`` events applied
    in order; other events are skipped."""
    calls: dict[str, dict[str, Any]] = {}
    for kind, data in events:
        if kind not in TOOL_EVENTS:
            continue
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError):
            value = orjson.loads(data)
            if kind == "tool_call":
                calls[value["id"]] = {**value, "decision": None, "result": None}
            elif kind == "tool_decision":
                calls[value["id"]]["decision"] = value["decision"]
            else:
                calls[value["id"]]["result"] = {
                    "content": value["content"],
                    "is_error": value["is_error"],
                }
    return calls
