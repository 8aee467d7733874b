"""The shapes of the account routes (``/api/auth``, ``/api/keys``, ``/api/admin/users``).

Request bodies refuse extra fields; an email is checked for shape here (one ``@``, no spaces,
at most 320 characters) and for uniqueness by the store, case-insensitively. Passwords are 8 to
256 characters. No response shape holds a password, a password hash, a session token or a key's
hash: the one secret ever answered is a new API key, once, in ``ApiKeyCreated``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyInfo",
    "ApiKeyList",
    "AuthStatus",
    "LoginRequest",
    "Me",
    "PasswordChange",
    "SetupRequest",
    "SignupRequest",
    "SignupResult",
    "UserCreate",
    "UserInfo",
    "UserList",
    "UserPatch",
    "UserRole",
    "UserStatus",
]

UserRole = Literal["admin", "user"]
UserStatus = Literal["active", "pending", "disabled"]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
Password = Field(min_length=8, max_length=256)
Name = Field(default=None, max_length=200)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _WithEmail(_Strict):
    email: str = Field(max_length=320)

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL.fullmatch(value):
            raise ValueError("email must look like name@example.com")
        return value


class AuthStatus(BaseModel):
    auth: Literal["on", "off"]
    setup_required: bool
    signup: Literal["closed", "approval", "open"]


class SetupRequest(_WithEmail):
    token: str = Field(min_length=1, max_length=200)
    password: str = Password
    name: str | None = Name


class SignupRequest(_WithEmail):
    password: str = Password
    name: str | None = Name


class SignupResult(BaseModel):
    status: Literal["active", "pending"]


class LoginRequest(_WithEmail):
    # Any length up to the limit: a wrong password of the wrong length is just a wrong password.
    password: str = Field(min_length=1, max_length=256)


class Me(BaseModel):
    id: str
    email: str
    name: str | None
    role: UserRole


class PasswordChange(_Strict):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Password


class ApiKeyCreate(_Strict):
    name: str = Field(min_length=1, max_length=100)


class ApiKeyInfo(BaseModel):
    id: str
    name: str
    prefix: str
    """The key's first characters, to tell keys apart; the key itself is never shown again."""
    created_at: str
    last_used_at: str | None


class ApiKeyCreated(BaseModel):
    id: str
    name: str
    prefix: str
    key: str
    """The key, shown this once: the server keeps only its hash."""


class ApiKeyList(BaseModel):
    keys: list[ApiKeyInfo]


class UserInfo(BaseModel):
    id: str
    email: str
    name: str | None
    role: UserRole
    status: UserStatus
    created_at: str


class UserList(BaseModel):
    users: list[UserInfo]


class UserCreate(_WithEmail):
    password: str = Password
    name: str | None = Name
    role: UserRole = "user"


class UserPatch(_Strict):
    role: UserRole | None = None
    status: UserStatus | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)
