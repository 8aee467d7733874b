"""MCP tools: the configured servers (``config``), their connections and calls (``servers``).

This package may import ``ssechat.errors``, ``ssechat.config`` and ``ssechat.providers`` only:
never the store, the runs or the API. It must never show an env or header value.
"""

from __future__ import annotations

from .config import ConfigError, ServerSpec, function_name, parse_entry, parse_file, public_url
from .results import MAX_RESULT_CHARS, ToolOutcome
from .servers import MCPServers, ServerState, Status, ToolInfo

__all__ = [
    "MAX_RESULT_CHARS",
    "ConfigError",
    "MCPServers",
    "ServerSpec",
    "ServerState",
    "Status",
    "ToolInfo",
    "ToolOutcome",
    "function_name",
    "parse_entry",
    "parse_file",
    "public_url",
]
