"""Model providers: the interface (``base``) and its implementations.

``OpenAIProvider`` talks to any OpenAI-compatible API; ``DemoProvider`` is the offline ``demo``
model. This package must never import from layers above it (runs, store, api, cli).
"""

from __future__ import annotations

from ssechat.providers.base import (
    ChatMessage,
    Delta,
    GenerationParams,
    Provider,
    RequestRole,
    Role,
    ToolCall,
    Usage,
)
from ssechat.providers.demo import DEMO_MODEL, DemoProvider
from ssechat.providers.openai import DEFAULT_BASE_URL, OpenAIProvider

__all__ = [
    "DEFAULT_BASE_URL",
    "DEMO_MODEL",
    "ChatMessage",
    "Delta",
    "DemoProvider",
    "GenerationParams",
    "OpenAIProvider",
    "Provider",
    "RequestRole",
    "Role",
    "ToolCall",
    "Usage",
]
