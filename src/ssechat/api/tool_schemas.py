"""The shapes of the tool API: the tools a conversation may offer its model, a tool call's
decision, and the admins' MCP servers, as pydantic models (see ``api.schemas`` for the rules:
requests refuse extra fields, responses send every field).

Secrets have no field here: an MCP server's environment and headers are answered as their names
only. This module must never hold logic beyond shapes and their limits.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Approval",
    "McpServer",
    "McpServerCreate",
    "McpServerList",
    "McpServerPatch",
    "McpTool",
    "ServerStatus",
    "ToolDecision",
    "ToolInfo",
    "ToolKey",
    "ToolList",
    "ToolResultOut",
]

Approval = Literal["ask", "always"]
ServerStatus = Literal["off", "starting", "ready", "error"]
ToolKey = Field(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}/[^\s/][^\s]{0,127}$",
    description='"<server>/<tool>"',
)
SERVER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolResultOut(_Out):
    content: str
    is_error: bool


class ToolDecision(_Out):
    """A decision taken on a call waiting for one."""

    id: str = Field(description="the call's id")
    decision: Literal["approved", "denied"]


class ToolInfo(_Out):
    """A tool a conversation may offer its model."""

    key: str = Field(description='"<server>/<tool>": what a conversation\'s tools list names')
    server: str
    tool: str
    description: str
    approval: Approval = Field(description="ask: each call waits for Approve or Deny")
    available: bool = Field(description="its server is running now")


class ToolList(_Out):
    tools: list[ToolInfo]


class McpTool(_Out):
    name: str
    description: str
    approval: Approval
    input_schema: dict[str, Any]


class McpServer(_Out):
    """An MCP server, as admins see it: never the values of its environment or headers."""

    name: str
    source: Literal["file", "admin"] = Field(
        description="file: from SSECHAT_MCP_CONFIG (turned on and off here, edited there)"
    )
    transport: Literal["stdio", "http"]
    command: str | None
    args: list[str]
    cwd: str | None
    url: str | None = Field(description="without any user:password")
    env: list[str] = Field(description="the names of the variables set; never their values")
    headers: list[str] = Field(description="the names of the headers sent; never their values")
    enabled: bool
    status: ServerStatus
    error: str | None = Field(description="why it is not running")
    approvals: dict[str, Approval] = Field(description="per tool; a tool not named asks")
    tools: list[McpTool]


class McpServerList(_Out):
    servers: list[McpServer]


class McpServerCreate(_Strict):
    name: str = Field(pattern=SERVER_NAME)
    config: dict[str, Any] = Field(
        description="an mcpServers entry: {command, args, env, cwd} or {url, headers}"
    )


class McpServerPatch(_Strict):
    enabled: bool | None = None
    approvals: dict[str, Approval] | None = Field(default=None, max_length=500)
    config: dict[str, Any] | None = Field(
        default=None, description="a new mcpServers entry, replacing the old one whole"
    )
