"""Which provider serves which model, built from the settings.

``demo`` is always there, offline. Every other model name goes to the OpenAI-compatible upstream
when one is configured (a key, or a base URL such as Ollama's); without one, asking for it is a
clear error that says what to set. This module must never log the key.
"""

from __future__ import annotations

import logging

from ssechat.config import DEMO_MODEL, Settings
from ssechat.errors import InvalidRequestError
from ssechat.providers.base import Provider
from ssechat.providers.demo import DemoProvider
from ssechat.providers.openai import OpenAIProvider

__all__ = ["DEFAULT_OPENAI_MODEL", "ModelInfo", "ProviderRegistry"]

logger = logging.getLogger(__name__)

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"

ModelInfo = dict[str, str]


class ProviderRegistry:
    """Maps model names to providers; owns them and closes them."""

    def __init__(self, *, demo: Provider, upstream: Provider | None, default_model: str) -> None:
        self.demo = demo
        self.upstream = upstream
        self.default_model = default_model

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        upstream: Provider | None = None
        if settings.has_upstream:
            upstream = OpenAIProvider(
                base_url=settings.openai_base_url or "https://api.openai.com/v1",
                api_key=settings.openai_api_key or None,
                connect_timeout=settings.upstream_connect_timeout,
                idle_timeout=settings.upstream_idle_timeout,
                max_retries=settings.upstream_max_retries,
                reasoning_tags=settings.reasoning_tags,
            )
        default = settings.model or (DEFAULT_OPENAI_MODEL if upstream else DEMO_MODEL)
        demo = DemoProvider(tokens_per_second=settings.demo_tokens_per_second)
        return cls(demo=demo, upstream=upstream, default_model=default)

    def resolve(self, model: str) -> Provider:
        if model == DEMO_MODEL:
            return self.demo
        if self.upstream is None:
            raise InvalidRequestError(
                f"model {model!r} is not available: no upstream is configured. Set "
                "OPENAI_API_KEY (and OPENAI_BASE_URL for another OpenAI-compatible server, "
                f"e.g. http://localhost:11434/v1 for Ollama), or use the {DEMO_MODEL!r} model."
            )
        return self.upstream

    async def models(self) -> list[ModelInfo]:
        """The upstream's models (from its /models, where it has one), the default, and demo."""
        found: list[ModelInfo] = []
        seen: set[str] = set()

        def add(model_id: str, provider: str) -> None:
            if model_id not in seen:
                seen.add(model_id)
                found.append({"id": model_id, "provider": provider})

        if self.upstream is not None:
            if self.default_model != DEMO_MODEL:
                add(self.default_model, self.upstream.name)
            for model_id in await self.upstream.list_models():
                add(model_id, self.upstream.name)
        add(DEMO_MODEL, self.demo.name)
        return found

    async def aclose(self) -> None:
        await self.demo.aclose()
        if self.upstream is not None:
            await self.upstream.aclose()
