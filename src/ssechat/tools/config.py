"""MCP servers as configured: the ``mcpServers`` entry shape other MCP clients use, validated.

An entry is either a stdio server (``command``, ``args``, ``env``, ``cwd``) or a Streamable HTTP
server (``url``, ``headers``), with the optional ``disabled``/``enabled``, ``alwaysAllow`` and
``timeout``. The same shape comes from the settings file (``SSECHAT_MCP_CONFIG``) and from the
admin API. ``function_name`` is the name a tool is offered to the model under.

This module must never put a secret in a message or a repr: a ``ConfigError`` names the server and
the key, never a value; ``ServerSpec.public()`` carries the names of env variables and headers
only, and a URL without its ``user:password``. It does no IO but ``parse_file``'s one read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "ConfigError",
    "ServerSpec",
    "Source",
    "Transport",
    "function_name",
    "parse_entry",
    "parse_file",
    "public_url",
]

Source = Literal["file", "admin"]
Transport = Literal["stdio", "http"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_FUNCTION_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
FUNCTION_NAME_MAX = 64

_HTTP_TYPES = frozenset({"http", "streamable-http", "streamableHttp", "streamable_http"})
# An HTTP header name is an RFC 9110 token; a value may not break the header block.
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_NAME_RE = re.compile(r"^[^=\x00]+$")


class ConfigError(ValueError):
    """An entry or a file that cannot be used; the message names where, never a value."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One MCP server as configured. ``env``, ``headers`` and ``url`` stay out of the repr."""

    name: str
    source: Source
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    cwd: str | None = None
    url: str | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    enabled: bool = True
    always_allow: frozenset[str] = frozenset()
    timeout: float | None = None

    def public(self) -> dict[str, Any]:
        """The admin API's view of this spec: names of env variables and headers, no values."""
        return {
            "name": self.name,
            "source": self.source,
            "transport": self.transport,
            "command": self.command,
            "args": list(self.args),
            "cwd": self.cwd,
            "url": public_url(self.url) if self.url is not None else None,
            "env": sorted(self.env),
            "headers": sorted(self.headers),
            "enabled": self.enabled,
        }

    def connection(self) -> tuple[object, ...]:
        """What a running connection depends on: a change here means a restart (approvals,
        timeout and the like do not)."""
        return (
            self.transport,
            self.command,
            self.args,
            tuple(sorted(self.env.items())),
            self.cwd,
            self.url,
            tuple(sorted(self.headers.items())),
        )


def function_name(server: str, tool: str) -> str:
    """The name a tool is offered to the model under (OpenAI: ``^[A-Za-z0-9_-]{1,64}$``)."""
    return _FUNCTION_UNSAFE.sub("_", f"{server}__{tool}")[:FUNCTION_NAME_MAX]


def public_url(url: str) -> str:
    """The URL without its ``user:password@`` (the rest is shown as configured)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _where(name: str) -> str:
    return f"MCP server {name!r}"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
        raise ConfigError(
            f"MCP server name {shown} is not valid: use 1 to 32 letters, digits, '_' or '-', "
            "starting with a letter or a digit"
        )
    return name


def _str(name: str, obj: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{_where(name)}: {key!r} is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigError(f"{_where(name)}: {key!r} must be a non-empty string")
    if "\x00" in value:
        raise ConfigError(f"{_where(name)}: {key!r} must not hold a NUL character")
    return value


def _str_list(name: str, obj: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{_where(name)}: {key!r} must be a list of strings")
    if any("\x00" in item for item in value):
        raise ConfigError(f"{_where(name)}: {key!r} must not hold a NUL character")
    return tuple(value)


def _str_map(
    name: str, obj: Mapping[str, Any], key: str, key_re: re.Pattern[str]
) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{_where(name)}: {key!r} must be an object of strings")
    for item_key, item in value.items():
        if not key_re.match(item_key):
            raise ConfigError(f"{_where(name)}: {key!r} holds a name that is not valid")
        if any(c in item for c in "\x00\r\n"):
            # Only the key's name is said: the value may be a secret.
            raise ConfigError(
                f"{_where(name)}: {key!r} value of {item_key!r} must not hold NUL or line breaks"
            )
    return dict(value)


def _bool(name: str, obj: Mapping[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError(f"{_where(name)}: {key!r} must be true or false")
    return value


def _timeout(name: str, obj: Mapping[str, Any]) -> float | None:
    value = obj.get("timeout")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ConfigError(f"{_where(name)}: 'timeout' must be a positive number of seconds")
    return float(value)


def _transport(name: str, obj: Mapping[str, Any]) -> Transport:
    kind = obj.get("type")
    if kind is None:
        has_command, has_url = obj.get("command") is not None, obj.get("url") is not None
        if has_command and has_url:
            raise ConfigError(f"{_where(name)}: give either 'command' (stdio) or 'url' (HTTP)")
        if has_url:
            return "http"
        if has_command:
            return "stdio"
        raise ConfigError(f"{_where(name)}: 'command' (stdio) or 'url' (HTTP) is required")
    if not isinstance(kind, str):
        raise ConfigError(f"{_where(name)}: 'type' must be a string")
    if kind == "stdio":
        return "stdio"
    if kind in _HTTP_TYPES:
        return "http"
    if kind == "sse":
        raise ConfigError(
            f"{_where(name)}: the legacy SSE transport ('type': 'sse') is not supported; "
            "use Streamable HTTP ('type': 'http')"
        )
    raise ConfigError(f"{_where(name)}: 'type' must be 'stdio' or 'http' (Streamable HTTP)")


def _url(name: str, obj: Mapping[str, Any]) -> str:
    url = _str(name, obj, "url", required=True)
    assert url is not None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ConfigError(f"{_where(name)}: 'url' is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{_where(name)}: 'url' must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in url):
        raise ConfigError(f"{_where(name)}: 'url' must not hold spaces")
    return url


def parse_entry(name: str, obj: object, *, source: Source) -> ServerSpec:
    """Validate one ``mcpServers`` entry; unknown keys are ignored."""
    name = _check_name(name)
    if not isinstance(obj, dict):
        raise ConfigError(f"{_where(name)}: the entry must be a JSON object")
    transport = _transport(name, obj)
    disabled, enabled = _bool(name, obj, "disabled"), _bool(name, obj, "enabled")
    common: dict[str, Any] = {
        "enabled": (enabled is not False) and not disabled,
        "always_allow": frozenset(_str_list(name, obj, "alwaysAllow")),
        "timeout": _timeout(name, obj),
    }
    if transport == "stdio":
        return ServerSpec(
            name=name,
            source=source,
            transport="stdio",
            command=_str(name, obj, "command", required=True),
            args=_str_list(name, obj, "args"),
            env=_str_map(name, obj, "env", _ENV_NAME_RE),
            cwd=_str(name, obj, "cwd"),
            **common,
        )
    return ServerSpec(
        name=name,
        source=source,
        transport="http",
        url=_url(name, obj),
        headers=_str_map(name, obj, "headers", _TOKEN_RE),
        **common,
    )


def parse_file(path: str | Path) -> list[ServerSpec]:
    """The servers of a settings file ``{"mcpServers": {name: entry}}``, in the file's order."""
    where = f"the MCP config file {str(path)!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"could not read {where}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position, never the text around it: the file holds secrets.
        raise ConfigError(
            f"{where} is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("mcpServers"), dict):
        raise ConfigError(f'{where} must be a JSON object with an "mcpServers" object')
    servers: dict[str, Any] = document["mcpServers"]
    return [parse_entry(name, entry, source="file") for name, entry in servers.items()]
