"""Settings: one typed object, read from ``SSECHAT_*`` environment variables.

CLI flags override the same fields. Defaults work offline on a fresh machine. This module must
never read a setting anywhere else, nor log a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["Settings"]

ENV_PREFIX = "SSECHAT_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ssechat can be told; each field ``x`` is read from ``SSECHAT_X``."""

    host: str = "127.0.0.1"
    port: int = 8000
    heartbeat: float = 15.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``), then apply non-None overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, type(getattr(cls(), f.name)), raw)
        settings = cls(**values)
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _parse(name: str, kind: type, raw: str) -> Any:
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
        raise ValueError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from None
