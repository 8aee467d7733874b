"""The chat service: the one place where the store, the providers and the runs meet.

Routes call it and nothing behind it; it checks what depends on settings (sizes, models),
keeps conversations and their trees, adds messages, builds the context sent upstream (system
prompt plus the branch from the root, trimmed oldest-first), starts, follows and stops runs,
names conversations after their first answer, and streams ``/api/chat``'s stateless answers.
It answers with the API's response models (``api.schemas``), or with frame sources and byte
iterators that a route wraps in an event-stream response. It must never speak HTTP (no
request, response, status or header): it takes values and raises ``ssechat.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ssechat import __version__
from ssechat.api.oneshot import Held, one_shot_frames
from ssechat.api.schemas import Conversation as ConversationOut
from ssechat.api.schemas import (
    ConversationPage,
    Health,
    ModelList,
    RunState,
)
from ssechat.api.search_service import SearchService
from ssechat.api.shared import Shared
from ssechat.api.tool_schemas import ToolDecision
from ssechat.api.tool_service import ToolService
from ssechat.api.transfer_service import TransferService
from ssechat.auth import AccountService
from ssechat.config import Settings
from ssechat.context import build_context, make_title
from ssechat.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    TooManyRunsError,
)
from ssechat.providers.base import ChatMessage, GenerationParams
from ssechat.providers.registry import ProviderRegistry
from ssechat.runs import MemoryRunLog, Run, RunManager, RunSpec
from ssechat.runs.followed import FollowedRun
from ssechat.runs.manager import Subscription
from ssechat.store import UNSET, Conversation, Exchange, Store, Unset, open_store
from ssechat.tools import MCPServers

__all__ = ["ChatService", "Services", "Started", "open_services", "params_of"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Started:
    """A run just started: what a client needs to find it; follow it with ``ChatService.follow``."""

    run: Run
    run_id: str
    conversation_id: str
    user_message_id: str
    message_id: str
    model: str


class ChatService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        providers: ProviderRegistry,
        runs: RunManager,
        shared: Shared | None = None,
        tools: ToolService | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.providers = providers
        self.runs = runs
        self.shared = shared
        """The runs of other processes (Redis), with several processes; None with one."""
        self.tools = tools if tools is not None else ToolService(settings, store, (), MCPServers())
        """The MCP servers and the tools conversations offer."""
        self.transfer = TransferService(settings, store)
        """Export and import."""
        self.search = SearchService(store)
        """Full-text search."""
        self._starting: dict[str, int] = {}

    @classmethod
    async def open(cls, settings: Settings) -> ChatService:
        store = await open_store(settings.database_url or None)
        try:
            shared = await Shared.open(settings, store) if settings.redis_url else None
        except BaseException:
            await store.close()
            raise
        if shared is None:
            interrupted = await store.mark_streaming_interrupted()
        else:
            # Other processes' runs are live: only answers no live run holds are abandoned.
            interrupted = await shared.mark_abandoned()
        if interrupted:
            logger.warning(
                "marked %d answer(s) left streaming by a crash as interrupted", interrupted
            )
        providers = ProviderRegistry.from_settings(settings)
        try:
            tools = await ToolService.open(settings, store)
        except BaseException:
            if shared is not None:
                await shared.close()
            await store.close()
            raise
        runs = RunManager(
            store,
            retry_ms=settings.retry_ms,
            persist_interval=settings.persist_interval,
            retention=settings.run_retention,
            on_disconnect=settings.on_disconnect,
            disconnect_grace=settings.disconnect_grace,
            log_factory=shared.logs.writer if shared else MemoryRunLog,
            cluster=shared.cluster if shared else None,
            tool_runner=tools.servers,
            tool_approval_timeout=settings.tool_approval_timeout,
            tool_timeout=settings.tool_timeout,
            max_tool_steps=settings.max_tool_steps,
        )
        service = cls(settings, store, providers, runs, shared, tools)
        if shared is not None:
            shared.cluster.on("stop-owner", service._stop_here_runs_of)
            shared.cluster.on("stop-conversation", service._stop_here_runs_in)
            cluster = shared.cluster
            shared.cluster.on("tools-changed", lambda _: tools.reload())
            tools.share_changes(lambda: cluster.publish("tools-changed", None))
            await shared.cluster.start()
        return service

    async def close(self) -> None:
        await self.runs.shutdown()
        await self.tools.close()
        if self.shared is not None:
            await self.shared.close()
        await self.providers.aclose()
        await self.store.close()

    # --- checks ---------------------------------------------------------------------------

    def _check_content(self, content: str, what: str = "content") -> None:
        limit = self.settings.max_content_chars
        if len(content) > limit:
            raise PayloadTooLargeError(f"{what} is {len(content)} characters; the limit is {limit}")

    def _resolve_model(self, requested: str | None, conversation: Conversation | None) -> str:
        model = requested or (conversation.model if conversation else None)
        model = model or self.providers.default_model
        self.providers.resolve(model)  # raises a clear error for an unavailable model
        return model

    # --- the server -----------------------------------------------------------------------

    def health(self) -> Health:
        return Health(
            status="ok",
            version=__version__,
            default_model=self.providers.default_model,
            demo=self.providers.upstream is None,
        )

    async def models(self) -> ModelList:
        return ModelList.model_validate(
            {"models": await self.providers.models(), "default": self.providers.default_model}
        )

    # --- conversations --------------------------------------------------------------------

    async def create_conversation(
        self,
        *,
        owner: str,
        title: str | None,
        model: str | None,
        system_prompt: str | None,
        tools: Sequence[str] | None = None,
    ) -> ConversationOut:
        if system_prompt is not None:
            self._check_content(system_prompt, "system_prompt")
        model_name = self._resolve_model(model, None) if model else None
        conversation = await self.store.create_conversation(
            title=title,
            model=model_name,
            system_prompt=system_prompt,
            owner=owner,
            tools=_unique(tools) if tools else None,
        )
        return ConversationOut.model_validate(conversation.as_dict())

    async def list_conversations(
        self, *, owner: str, limit: int, cursor: str | None
    ) -> ConversationPage:
        """One page, most recently updated first, and the cursor of the next (None: the last)."""
        conversations, next_cursor = await self.store.list_conversations(
            owner=owner, limit=limit, cursor=cursor
        )
        return ConversationPage.model_validate(
            {"conversations": [c.as_dict() for c in conversations], "next_cursor": next_cursor}
        )

    async def update_conversation(
        self,
        conversation_id: str,
        *,
        owner: str,
        title: str | Unset | None = UNSET,
        model: str | Unset | None = UNSET,
        system_prompt: str | Unset | None = UNSET,
        current_leaf_id: str | Unset | None = UNSET,
        tools: Sequence[str] | Unset | None = UNSET,
    ) -> dict[str, Any]:
        """Change the fields given (``None`` clears one); answer the conversation as it is now."""
        if isinstance(system_prompt, str):
            self._check_content(system_prompt, "system_prompt")
        if isinstance(model, str):
            self._resolve_model(model, None)
        await self.store.update_conversation(
            conversation_id,
            owner=owner,
            title=title,
            model=model,
            system_prompt=system_prompt,
            current_leaf_id=current_leaf_id,
            tools=_unique(tools) if tools is not None and not isinstance(tools, Unset) else tools,
        )
        return await self.conversation(conversation_id, owner=owner)

    async def delete_conversation(self, conversation_id: str, *, owner: str) -> None:
        """Stop the conversation's live runs (each saves its answer as ``stopped``), then
        delete it and its messages; ``NotFoundError`` (and nothing stopped) if it is not there."""
        await self.store.get_conversation(conversation_id, owner=owner)
        await self._stop_here_runs_in(conversation_id)
        if self.shared is not None:
            await self.shared.cluster.publish("stop-conversation", conversation_id)
        await self.store.delete_conversation(conversation_id, owner=owner)

    async def stop_runs_of(self, owner: str) -> None:
        """Stop every live run of ``owner`` (their account was disabled or deleted), here and
        on every other process."""
        await self._stop_here_runs_of(owner)
        if self.shared is not None:
            await self.shared.cluster.publish("stop-owner", owner)

    async def _stop_here_runs_of(self, owner: str) -> None:
        for run in self.runs.live_runs():
            if run.spec.owner == owner:
                await self.runs.cancel(run.id)

    async def _stop_here_runs_in(self, conversation_id: str) -> None:
        for run in self.runs.live_runs():
            if run.spec.conversation_id == conversation_id:
                await self.runs.cancel(run.id)

    # --- generation -----------------------------------------------------------------------

    async def send(
        self,
        conversation_id: str,
        content: str,
        *,
        owner: str,
        parent_id: str | None,
        params: GenerationParams,
        model: str | None,
        parent_given: bool,
    ) -> Started:
        """Add a user message under ``parent_id`` (default: the current leaf) and answer it.

        One write transaction (``Store.start_exchange``) checks the parent (an answer still
        streaming is refused there), adds both messages and reads the branch the context is
        built from. Only when no model is named is the conversation read first, for its model.
        """
        self._check_content(content)
        parent: str | Unset | None = parent_id if parent_given else UNSET
        async with self._run_slot(owner):
            if model is not None:
                model_name = self._resolve_model(model, None)
            else:
                conversation = await self.store.get_conversation(conversation_id, owner=owner)
                model_name = self._resolve_model(None, conversation)
            if isinstance(parent, str):
                self._check_not_running(parent)
            exchange = await self.store.start_exchange(
                conversation_id,
                owner=owner,
                parent_id=parent,
                user_content=content,
                model=model_name,
            )
            return await self._started(self._start(exchange, model_name, params, owner))

    async def regenerate(
        self, message_id: str, *, owner: str, params: GenerationParams, model: str | None
    ) -> Started:
        """Answer again: a new assistant sibling of ``message_id`` (or a first child of a user
        message), as ChatGPT's Regenerate does."""
        async with self._run_slot(owner):
            message = await self.store.get_message(message_id, owner=owner)
            conversation = await self.store.get_conversation(message.conversation_id, owner=owner)
            # The model picked now, as in ChatGPT: regenerating is how one tries another model.
            model_name = self._resolve_model(model, conversation)
            if message.role == "user":
                self._check_not_running(message.id)
            elif message.parent_id is not None:
                self._check_not_running(message.parent_id)
            exchange = await self.store.start_answer(message_id, owner=owner, model=model_name)
            return await self._started(self._start(exchange, model_name, params, owner))

    @asynccontextmanager
    async def _run_slot(self, owner: str) -> AsyncIterator[None]:
        """Hold one of ``owner``'s live-run places while a run is being started, so that two
        sends at once cannot both take the last one; ``TooManyRunsError`` when none is free."""
        await self._take_place(owner)
        try:
            yield
        finally:
            self._release(owner)

    async def _take_place(self, owner: str) -> None:
        """Take one of ``owner``'s live-run places (give it back with ``_release``); a live
        run holds one of its own, counted by the run manager, or with several processes by
        the cluster (on every process; two processes starting a user's last place at the same
        instant may both take it)."""
        limit = self.settings.max_live_runs_per_user
        if not limit:
            return self._count_start(owner)
        live = self.runs.live_count(owner)
        if self.shared is not None:
            # Redis down: this process's count will do; the run then fails to take its lease,
            # with a clear error event.
            with contextlib.suppress(ServiceUnavailableError):
                live = await self.shared.cluster.live_count(owner)
        starting = self._starting.get(owner, 0)
        if live + starting >= limit:
            raise TooManyRunsError(
                f"you have {limit} answers being generated already; wait for one to finish "
                "or stop one",
                retry_after=1.0,
            )
        self._count_start(owner)

    def _count_start(self, owner: str) -> None:
        self._starting[owner] = self._starting.get(owner, 0) + 1

    async def _started(self, started: Started) -> Started:
        """With several processes, answer once the run holds its lease: the id the client gets
        is then found by every process (one Redis round trip, paid by the start)."""
        if self.shared is not None:
            await started.run.ready.wait()
        return started

    def _check_not_running(self, message_id: str) -> None:
        if self.runs.live_run_for_message(message_id):
            raise ConflictError("that answer is still being generated; stop it first")

    def _start(
        self, exchange: Exchange, model: str, params: GenerationParams, owner: str
    ) -> Started:
        conversation, branch = exchange.conversation, exchange.branch
        question_id, answer_id = exchange.user.id, exchange.answer.id
        messages = build_context(
            conversation.system_prompt, branch, budget_chars=self.settings.context_budget_chars
        )
        spec = RunSpec(
            conversation_id=conversation.id,
            user_message_id=question_id,
            message_id=answer_id,
            model=model,
            messages=messages,
            params=params,
            owner=owner,
            tools=self.tools.offers(conversation.tools) if conversation.tools else (),
        )
        first_question = next((m.content for m in branch if m.role == "user"), "")

        async def name_conversation(run: Run) -> None:
            if run.status in ("complete", "length") and conversation.title is None:
                await self.store.set_title_if_empty(
                    conversation.id, make_title(first_question, await run.text())
                )

        run = self.runs.start(spec, self.providers.resolve(model), on_finish=name_conversation)
        return Started(
            run=run,
            run_id=run.id,
            conversation_id=conversation.id,
            user_message_id=question_id,
            message_id=answer_id,
            model=model,
        )

    # --- reading --------------------------------------------------------------------------

    async def conversation(self, conversation_id: str, *, owner: str) -> dict[str, Any]:
        """The conversation with its whole tree; a live answer shows its run's text so far.

        Plain values in the shape of ``schemas.ConversationDetail``, for the route to send as they
        are: built from the store's records, they are checked against the schema by the tests,
        not at every request (a tree of 2 000 messages: 0.4 ms with orjson, 20 ms through
        pydantic, validated by us and again by FastAPI)."""
        conversation = await self.store.get_conversation(conversation_id, owner=owner)
        messages = await self.store.list_messages(conversation_id, owner=owner)
        items = [message.as_dict() for message in messages]
        for item in items:
            run: Run | None = self.runs.live_run_for_message(item["id"])
            if run is None and self.shared is not None and item["status"] == "streaming":
                # Another process's run; with Redis down, the answer as last saved.
                with contextlib.suppress(ServiceUnavailableError):
                    run = await self.shared.followers.for_message(item["id"])
            item["run_id"] = run.id if run is not None else None
            if run is not None:
                # The stored text lags by up to persist_interval; the run has it all.
                item["content"] = await run.text()
                thinking = await run.reasoning()
                if thinking:
                    item["reasoning"] = thinking
                calls = run.tool_calls()
                if calls:
                    item["tool_calls"] = calls
        return {**conversation.as_dict(), "messages": items}

    # --- runs -----------------------------------------------------------------------------

    async def _run(self, run_id: str, owner: str) -> Run:
        """The run, this process's or (with several) another's, if it is ``owner``'s: another
        user's run is as unknown as a made-up id."""
        try:
            run: Run | None = self.runs.get(run_id)
        except NotFoundError:
            run = None
        if run is None and self.shared is not None:
            run = await self.shared.followers.get(run_id)
        if run is None or run.spec.owner != owner:
            raise NotFoundError(f"run {run_id!r} not found (unknown, or finished long ago)")
        return run

    async def run_state(self, run_id: str, *, owner: str) -> RunState:
        return RunState.model_validate(await (await self._run(run_id, owner)).as_dict())

    def follow(self, started: Started) -> Subscription:
        """The events of a run just started, from its first: a frame source for one client,
        to be closed when that client leaves."""
        return self.runs.subscribe(started.run)

    async def follow_run(self, run_id: str, after: int | None, *, owner: str) -> Subscription:
        """The events of a run after the id ``after`` (None: from the first), then live.

        ``after`` must be one of this run's ids (``InvalidRequestError`` otherwise): a client
        that resumes never silently misses events.
        """
        run = await self._run(run_id, owner)
        if after is None:
            return self.runs.subscribe(run)
        last_id = await run.log.last_id()
        if after > last_id and isinstance(run, FollowedRun):
            # The client saw it from the run's own process, a moment before it reached Redis.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.mirror.wait_for(after), timeout=2.0)
            last_id = await run.log.last_id()
        if after > last_id:
            raise InvalidRequestError(
                f"Last-Event-ID {after} is ahead of this run (last id {last_id})"
            )
        return self.runs.subscribe(run, after)

    async def decide_tool_call(
        self, run_id: str, call_id: str, *, approve: bool, owner: str
    ) -> ToolDecision:
        """Approve or deny a tool call the run waits for, on whichever process drives it."""
        run = await self._run(run_id, owner)
        if not isinstance(run, FollowedRun):
            self.runs.decide(run.id, call_id, approve)
            return ToolDecision(id=call_id, decision="approved" if approve else "denied")
        assert self.shared is not None
        decision = await self.shared.followers.decide(
            run, call_id, approve, patience=2 * self.settings.run_lease
        )
        return ToolDecision(id=call_id, decision=decision)

    async def cancel_run(self, run_id: str, *, owner: str) -> RunState:
        """Stop the run (idempotent) and answer its final state, once saved."""
        run = await self._run(run_id, owner)
        if isinstance(run, FollowedRun):
            assert self.shared is not None
            await self.shared.followers.cancel(run, patience=2 * self.settings.run_lease)
        else:
            run = await self.runs.cancel(run.id)
        return RunState.model_validate(await run.as_dict())

    # --- stateless answers (/api/chat) ----------------------------------------------------

    async def one_shot(
        self,
        messages: Sequence[ChatMessage],
        model: str | None,
        *,
        owner: str,
        reasoning: bool = False,
    ) -> AsyncIterator[bytes]:
        """Check the request now (raising before anything is sent), then return the answer's
        frames: ``data: <text>`` per piece, an ``error`` event on failure, ``data: [DONE]``;
        with ``reasoning``, the model's thinking too, as ``event: reasoning`` frames.

        Nothing is stored. Closing the iterator closes the upstream request. It counts against
        the owner's live runs until it is closed (it spends the upstream key just the same).
        """
        for message in messages:
            self._check_content(message.content)
        if not any(m.role == "user" for m in messages):
            raise InvalidRequestError("messages must hold at least one user message")
        model_name = self._resolve_model(model, None)
        provider = self.providers.resolve(model_name)
        await self._take_place(owner)  # held until the stream is closed
        frames = one_shot_frames(provider, messages, model_name, reasoning=reasoning)
        return Held(frames, lambda: self._release(owner))

    def _release(self, owner: str) -> None:
        left = self._starting[owner] - 1
        if left:
            self._starting[owner] = left
        else:
            del self._starting[owner]


def _unique(keys: Sequence[str]) -> list[str]:
    """The keys in their order, each once."""
    return list(dict.fromkeys(keys))


def params_of(temperature: float | None, max_tokens: int | None) -> GenerationParams:
    return GenerationParams(temperature=temperature, max_tokens=max_tokens)


@dataclass(frozen=True, slots=True)
class Services:
    """What the app's lifespan opens: the chat service and the account service on its store,
    and the one-time setup token while no account exists (to be shown as a link)."""

    chat: ChatService
    accounts: AccountService
    setup_token: str | None

    async def close(self) -> None:
        try:
            await self.accounts.close()
        finally:
            await self.chat.close()


async def open_services(settings: Settings, *, setup_token: bool = True) -> Services:
    """Open the store, the providers and the runs, then the accounts on the same store: a
    disabled or deleted account's runs stop (``ChatService.stop_runs_of``). ``setup_token``:
    make the first-run setup token while no account exists (not in ``serve``'s workers)."""
    chat = await ChatService.open(settings)
    try:
        accounts = AccountService(settings, chat.store)
        accounts.on_revoke(chat.stop_runs_of)
        if chat.shared is not None:
            cluster = chat.shared.cluster
            accounts.share_revocations(lambda message: cluster.publish("revoke", message))
            cluster.on("revoke", accounts.revoked_elsewhere)
        token = await accounts.start(setup_token=setup_token)
    except BaseException:
        await chat.close()
        raise
    return Services(chat=chat, accounts=accounts, setup_token=token)
