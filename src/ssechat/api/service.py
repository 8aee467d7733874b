"""The chat service: the one place where the store, the providers and the runs meet.

Routes call it; it adds messages, builds the context sent upstream (system prompt plus the
branch from the root, trimmed oldest-first), starts runs and names conversations after their
first answer. It must never speak HTTP: it takes values and raises ``ssechat.errors``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ssechat.config import Settings
from ssechat.context import build_context, make_title
from ssechat.errors import ConflictError, PayloadTooLargeError
from ssechat.providers.base import GenerationParams
from ssechat.providers.registry import ProviderRegistry
from ssechat.runs import Run, RunManager, RunSpec
from ssechat.store import UNSET, Conversation, Exchange, Message, Store, Unset

__all__ = ["ChatService", "Started"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Started:
    run: Run
    user_message_id: str
    message_id: str


class ChatService:
    def __init__(
        self, settings: Settings, store: Store, providers: ProviderRegistry, runs: RunManager
    ) -> None:
        self.settings = settings
        self.store = store
        self.providers = providers
        self.runs = runs

    @classmethod
    async def open(cls, settings: Settings) -> ChatService:
        store = await Store.open(settings.database_url or None)
        interrupted = await store.mark_streaming_interrupted()
        if interrupted:
            logger.warning(
                "marked %d answer(s) left streaming by a crash as interrupted", interrupted
            )
        providers = ProviderRegistry.from_settings(settings)
        runs = RunManager(
            store,
            retry_ms=settings.retry_ms,
            persist_interval=settings.persist_interval,
            retention=settings.run_retention,
            on_disconnect=settings.on_disconnect,
            disconnect_grace=settings.disconnect_grace,
        )
        return cls(settings, store, providers, runs)

    async def close(self) -> None:
        await self.runs.shutdown()
        await self.providers.aclose()
        await self.store.close()

    # --- checks ---------------------------------------------------------------------------

    def check_content(self, content: str, what: str = "content") -> None:
        limit = self.settings.max_content_chars
        if len(content) > limit:
            raise PayloadTooLargeError(f"{what} is {len(content)} characters; the limit is {limit}")

    def resolve_model(self, requested: str | None, conversation: Conversation | None) -> str:
        model = requested or (conversation.model if conversation else None)
        model = model or self.providers.default_model
        self.providers.resolve(model)  # raises a clear error for an unavailable model
        return model

    # --- generation -----------------------------------------------------------------------

    async def send(
        self,
        conversation_id: str,
        content: str,
        *,
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
        self.check_content(content)
        parent: str | Unset | None = parent_id if parent_given else UNSET
        if model is not None:
            model_name = self.resolve_model(model, None)
        else:
            conversation = await self.store.get_conversation(conversation_id)
            model_name = self.resolve_model(None, conversation)
        if isinstance(parent, str):
            self._check_not_running(parent)
        exchange = await self.store.start_exchange(
            conversation_id, parent_id=parent, user_content=content, model=model_name
        )
        return self._start(exchange, model_name, params)

    async def regenerate(
        self, message_id: str, *, params: GenerationParams, model: str | None
    ) -> Started:
        """Answer again: a new assistant sibling of ``message_id`` (or a first child of a user
        message), as ChatGPT's Regenerate does."""
        message = await self.store.get_message(message_id)
        conversation = await self.store.get_conversation(message.conversation_id)
        # The model picked now, as in ChatGPT: regenerating is how one tries another model.
        model_name = self.resolve_model(model, conversation)
        if message.role == "user":
            self._check_not_running(message.id)
        elif message.parent_id is not None:
            self._check_not_running(message.parent_id)
        exchange = await self.store.start_answer(message_id, model=model_name)
        return self._start(exchange, model_name, params)

    def _check_not_running(self, message_id: str) -> None:
        if self.runs.live_run_for_message(message_id):
            raise ConflictError("that answer is still being generated; stop it first")

    def _start(self, exchange: Exchange, model: str, params: GenerationParams) -> Started:
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
        )
        first_question = next((m.content for m in branch if m.role == "user"), "")

        async def name_conversation(run: Run) -> None:
            if run.status in ("complete", "length") and conversation.title is None:
                await self.store.set_title_if_empty(
                    conversation.id, make_title(first_question, run.text)
                )

        run = self.runs.start(spec, self.providers.resolve(model), on_finish=name_conversation)
        return Started(run=run, user_message_id=question_id, message_id=answer_id)

    # --- reading --------------------------------------------------------------------------

    async def conversation_with_messages(self, conversation_id: str) -> dict[str, Any]:
        conversation = await self.store.get_conversation(conversation_id)
        messages = await self.store.list_messages(conversation_id)
        return {
            **conversation.as_dict(),
            "messages": [self.message_dict(m) for m in messages],
        }

    def message_dict(self, message: Message) -> dict[str, Any]:
        data = message.as_dict()
        run = self.runs.live_run_for_message(message.id)
        data["run_id"] = run.id if run is not None else None
        if run is not None:
            # The stored text lags by up to persist_interval; the run has it all.
            data["content"] = run.text
        return data

    async def cancel_conversation_runs(self, conversation_id: str) -> None:
        for run in self.runs.live_runs():
            if run.spec.conversation_id == conversation_id:
                await self.runs.cancel(run.id)


def params_of(temperature: float | None, max_tokens: int | None) -> GenerationParams:
    return GenerationParams(temperature=temperature, max_tokens=max_tokens)
