"""Settings: one typed object, read from ``SSECHAT_*`` environment variables.

Two standard variables are read as well, unprefixed, because every OpenAI-compatible tool reads
them: ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``. CLI flags override the same fields. Defaults work
offline on a fresh machine (the ``demo`` model, a SQLite file in the user's data directory).
This module must never read a setting anywhere else, nor show the key in a repr or a log line.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

import limits

__all__ = ["DEMO_MODEL", "ENV_ALIASES", "ENV_PREFIX", "Settings"]

ENV_PREFIX = "SSECHAT_"
DEMO_MODEL = "demo"

# Fields that also (and first) come from a standard, unprefixed variable.
ENV_ALIASES: Mapping[str, str] = {
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
}

OnDisconnect = Literal["continue", "cancel"]
AuthMode = Literal["on", "off"]
SignupPolicy = Literal["closed", "approval", "open"]

# Never shown in a repr, an error message or a log line.
_SECRETS = frozenset({"openai_api_key", "admin_password", "api_key", "database_url", "redis_url"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ssechat can be told; each field ``x`` is read from ``SSECHAT_X``."""

    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    # Where conversations live: a SQLAlchemy URL or a file path; empty = the user's data dir.
    database_url: str = field(default="", repr=False)
    # The model new conversations use; empty = the upstream's default, or "demo" with none.
    model: str = ""
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str = ""
    # Seconds of silence before an event stream sends a ":" heartbeat comment.
    heartbeat: float = 15.0
    # A reconnecting EventSource waits this long (ms), sent as "retry:" on every run stream.
    retry_ms: int = 3000
    max_content_chars: int = 100_000
    # Characters of history sent upstream; the oldest messages are dropped first.
    context_budget_chars: int = 32_000
    # What a run does when its last subscriber leaves: go on and save ("continue"), or stop
    # the upstream request after disconnect_grace seconds ("cancel", the tutorial's behaviour).
    on_disconnect: OnDisconnect = "continue"
    disconnect_grace: float = 10.0
    # How long a finished run stays replayable by id, in seconds (its Redis stream expires then).
    run_retention: float = 600.0
    # redis://… : run logs in Redis Streams, and runs followed, resumed and stopped from any
    # process; empty = the in-memory log of one process.
    redis_url: str = field(default="", repr=False)
    # Seconds within which another process notices that a run's process died, and ends the run.
    run_lease: float = 10.0
    # Server processes `ssechat serve` starts (more than 1 needs PostgreSQL and Redis).
    workers: int = 1
    # At most this many seconds between two saves of a growing answer.
    persist_interval: float = 0.5
    upstream_connect_timeout: float = 10.0
    upstream_idle_timeout: float = 60.0
    upstream_max_retries: int = 2
    demo_tokens_per_second: float = 40.0
    # The built web UI served at "/"; empty = web/dist of this source checkout.
    web_dir: str = ""
    # Tag names (comma-separated) whose leading <tag>…</tag> in an answer is the model's
    # reasoning (llama.cpp with --reasoning-format none, vLLM without a reasoning parser).
    reasoning_tags: str = "think,thinking"

    # --- tools (MCP servers) ---
    # A JSON file {"mcpServers": {name: {command, args, env} | {url, headers}}}, the shape other
    # MCP clients read; admins add more, and turn each on and off, on the Tools page.
    mcp_config: str = ""
    # How long a tool call that asks waits for Approve or Deny before the model is told it
    # expired, in seconds.
    tool_approval_timeout: float = 600.0
    # How long one tool call may run, in seconds (a server's "timeout" entry overrides it).
    tool_timeout: float = 60.0
    # Upstream requests of one answer that may end in tool calls; the next one gets no tools.
    max_tool_steps: int = 8

    # --- accounts and access ---
    # "off": one implicit user, no sign-in; only allowed when listening on loopback addresses.
    auth: AuthMode = "on"
    # Who may make an account: "closed" (admins make them), "approval" (pending until an admin
    # approves), "open".
    signup: SignupPolicy = "closed"
    # A headless install's first admin, created at start when missing.
    admin_email: str = ""
    admin_password: str = field(default="", repr=False)
    # Host names the server answers to, comma-separated (empty: localhost, 127.0.0.1, [::1] and
    # the address it is bound to; "*": any, only when set explicitly).
    allowed_hosts: str = ""
    # Addresses or networks (comma-separated) of reverse proxies whose X-Forwarded-Proto and
    # X-Forwarded-For are believed.
    trusted_proxies: str = ""
    # Origins (comma-separated) allowed to call the API from their pages, with an API key.
    cors_origins: str = ""
    # A session ends after this many idle seconds, and this many seconds after sign-in.
    session_idle_seconds: float = 14 * 86400.0
    session_max_seconds: float = 60 * 86400.0
    # Runs one user may have generating at once (0: no limit).
    max_live_runs_per_user: int = 4
    # Failed sign-ins allowed per account and per client address, in ``limits`` notation.
    login_limit_account: str = "10 per 15 minutes"
    login_limit_address: str = "50 per 15 minutes"
    # The key ``ssechat chat`` sends (as Authorization: Bearer); not used by the server.
    api_key: str = field(default="", repr=False)

    @property
    def has_upstream(self) -> bool:
        """An OpenAI-compatible upstream is configured (a key, or a base URL such as Ollama's)."""
        return bool(self.openai_api_key or self.openai_base_url)

    @property
    def shared_database(self) -> bool:
        """The database is a server several processes can share (PostgreSQL), not a file."""
        return self.database_url.startswith(("postgresql", "postgres://"))

    @property
    def allowed_host_names(self) -> frozenset[str]:
        """The lowercased host names (no port) a request's ``Host`` may name; ``*`` is any."""
        if self.allowed_hosts.strip():
            return frozenset(_split(self.allowed_hosts.lower()))
        names = {"localhost", "127.0.0.1", "[::1]"}
        if self.host not in ("0.0.0.0", "::", ""):
            names.add(f"[{self.host}]" if ":" in self.host else self.host.lower())
        return frozenset(names)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return _split(self.trusted_proxies)

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.rstrip("/") for origin in _split(self.cors_origins)]

    @property
    def listens_on_loopback(self) -> bool:
        host = self.host.strip("[]").lower()
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``), then apply non-None overrides."""
        env = os.environ if env is None else env
        defaults = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            raw = env.get(name)
            alias = ENV_ALIASES.get(f.name)
            if alias and env.get(alias):
                name, raw = alias, env[alias]
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(name, f.name, type(getattr(defaults, f.name)), raw)
        settings = cls(**values)
        settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.on_disconnect not in get_args(OnDisconnect):
            raise ValueError(
                f"{ENV_PREFIX}ON_DISCONNECT must be one of {', '.join(get_args(OnDisconnect))}"
            )
        for name in ("max_content_chars", "context_budget_chars", "retry_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        for name, kind in (("auth", AuthMode), ("signup", SignupPolicy)):
            if getattr(self, name) not in get_args(kind):
                raise ValueError(
                    f"{ENV_PREFIX}{name.upper()} must be one of {', '.join(get_args(kind))}"
                )
        if self.auth == "off" and not self.listens_on_loopback:
            raise ValueError(
                f"{ENV_PREFIX}AUTH=off lets anyone who reaches the server act as its one user; "
                f"it is only allowed when listening on a loopback address, not {self.host!r}"
            )
        if self.run_lease <= 0:
            raise ValueError(f"{ENV_PREFIX}RUN_LEASE must be positive (seconds)")
        if self.workers < 1:
            raise ValueError(f"{ENV_PREFIX}WORKERS must be 1 or more")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"{ENV_PREFIX}REDIS_URL must start with redis://, rediss:// or unix://"
            )
        if self.workers > 1 and not (self.shared_database and self.redis_url):
            raise ValueError(
                f"{self.workers} workers need a database and a run log that processes share: set "
                f"{ENV_PREFIX}DATABASE_URL=postgresql://… and {ENV_PREFIX}REDIS_URL=redis://… "
                "(the embedded SQLite file and in-memory run log serve one process)"
            )
        if self.max_live_runs_per_user < 0:
            raise ValueError(f"{ENV_PREFIX}MAX_LIVE_RUNS_PER_USER must be 0 (no limit) or more")
        for name in ("session_idle_seconds", "session_max_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} must be positive")
        for name in ("login_limit_account", "login_limit_address"):
            try:
                limits.parse(getattr(self, name))
            except ValueError:
                raise ValueError(
                    f"{ENV_PREFIX}{name.upper()} must read like '10 per 15 minutes'"
                ) from None
        for network in self.trusted_proxy_list:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"{ENV_PREFIX}TRUSTED_PROXIES: {network!r} is not an address or network"
                ) from None
        for tag in _split(self.reasoning_tags):
            if any(c in tag for c in "<>/") or any(c.isspace() for c in tag):
                raise ValueError(
                    f"{ENV_PREFIX}REASONING_TAGS: {tag!r} must be a bare tag name, such as think"
                )
        for name in ("tool_approval_timeout", "tool_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} must be positive (seconds)")
        if not 0 <= self.max_tool_steps <= 100:
            raise ValueError(f"{ENV_PREFIX}MAX_TOOL_STEPS must be between 0 and 100")
        if bool(self.admin_email) != bool(self.admin_password):
            raise ValueError(
                f"{ENV_PREFIX}ADMIN_EMAIL and {ENV_PREFIX}ADMIN_PASSWORD go together: set both"
            )


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _parse(variable: str, name: str, kind: type, raw: str) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        shown = "<hidden>" if name in _SECRETS else repr(raw)
        raise ValueError(f"{variable}={shown} is not a valid {kind.__name__}") from None
