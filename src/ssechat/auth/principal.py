"""``Principal``: who a request acts as, once its credentials are checked.

This module must never hold a token or a key: ``credential`` is the stored hash that names the
session or key the request came with (empty for the implicit user of single-user mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Principal"]

Via = Literal["session", "key", "local"]


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    email: str
    name: str | None
    role: str
    via: Via
    credential: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def as_me(self) -> dict[str, str | None]:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role}
