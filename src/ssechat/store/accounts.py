"""``SQLAccounts``: the ``Accounts`` of a ``SQLStore`` (users, sessions, API keys), on its threads.

Like the store's conversations, each public method is one synchronous body run whole on the
store's threads (``store.threads.reads`` / ``writes``): reads on a reader, writes on the one
writer in one transaction, so a rule that spans rows holds even against a concurrent call. Two
admins demoting each other at once, or two first-run setups, are two write transactions one
after the other: the second sees what the first did. Across processes (PostgreSQL) such a
write first takes the dialect's invariants lock (``StoreThreads.lock_invariants``): every write
that could break a rule spanning rows — making a user, changing a role or status, deleting a
user — runs one at a time, and reads what the one before committed. A refused change leaves
the database as it was.

The rules (from ``store.base.Accounts``): emails are unique compared stripped and lower-cased;
no change may leave ssechat without an active admin; the first admin is made once, with a stored
setup token if one is asked for, and adopts the conversations that have no owner yet.
``find_session`` and ``find_api_key`` are on every request's path: one prebuilt read query each.

This module must never see a password, token or key in clear (the caller hashes them), never
decide whether a session is still valid (its lifetimes are the caller's settings), and never hold
SQLite-only SQL.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store.models import (
    UNSET,
    USER_ROLES,
    USER_STATUSES,
    ApiKey,
    SessionRecord,
    Unset,
    User,
    email_key,
)
from ssechat.store.rows import (
    API_KEY_FIELDS,
    SESSION_FIELDS,
    USER_FIELDS,
    api_key_from_row,
    session_from_row,
    user_from_row,
)
from ssechat.store.schema import EMAIL_KEY_LENGTH
from ssechat.store.statements import (
    ADD_SETUP_TOKEN,
    ADOPT_CONVERSATIONS,
    COUNT_USERS,
    DELETE_API_KEY,
    DELETE_OWNED_CONVERSATIONS,
    DELETE_OWNED_MESSAGES,
    DELETE_SESSION,
    DELETE_SETUP_TOKENS,
    DELETE_STALE_SESSIONS,
    DELETE_USER,
    DELETE_USER_API_KEYS,
    DELETE_USER_SESSIONS,
    DELETE_USER_SESSIONS_BUT,
    EMAIL_TAKEN,
    FIND_API_KEY,
    FIND_LOGIN,
    FIND_SESSION,
    FIRST_ADMIN,
    GET_USER,
    INSERT_API_KEY,
    INSERT_SESSION,
    INSERT_USER,
    LIST_API_KEYS,
    LIST_USERS,
    LOCK_OWNED_CONVERSATIONS,
    OTHER_ACTIVE_ADMINS,
    SETUP_TOKEN_EXISTS,
    TOUCH_API_KEY,
    TOUCH_SESSION,
    USER_EXISTS,
    user_update,
)
from ssechat.store.threads import StoreThreads, reads, writes

__all__ = ["SQLAccounts"]

_USER_COUNT = len(USER_FIELDS)  # a session's or key's row: the user's columns, then its own


class SQLAccounts:
    """The accounts of a ``SQLStore``: the operations of ``Accounts`` (documented there). Made
    by the store, on its threads and with its clock; reach it through ``store.accounts``."""

    def __init__(self, threads: StoreThreads, *, clock: Callable[[], float] = time.time) -> None:
        self.threads = threads
        self._clock = clock

    # --- users --------------------------------------------------------------------------------

    @reads
    def count_users(self, conn: sa.Connection) -> int:
        return int(conn.execute(COUNT_USERS).scalar_one())

    @writes
    def create_user(
        self,
        conn: sa.Connection,
        *,
        email: str,
        name: str | None,
        password_hash: str,
        role: str,
        status: str,
    ) -> User:
        _check_role(role)
        _check_status(status)
        return self._insert_user(conn, email, name, password_hash, role, status)

    @writes
    def create_first_admin(
        self,
        conn: sa.Connection,
        *,
        email: str,
        name: str | None,
        password_hash: str,
        setup_token_hash: str | None,
    ) -> User:
        # One write transaction under the invariants lock: a second setup, from this process or
        # another, waits for this one and then finds an account.
        self.threads.lock_invariants(conn)
        if conn.execute(COUNT_USERS).scalar_one():
            raise ConflictError("ssechat is set up already: an account exists")
        if setup_token_hash is not None and (
            conn.execute(SETUP_TOKEN_EXISTS, {"b_token_hash": setup_token_hash}).first() is None
        ):
            raise NotFoundError("setup token not found; use the link ssechat serve printed")
        user = self._insert_user(conn, email, name, password_hash, "admin", "active")
        conn.execute(DELETE_SETUP_TOKENS)
        conn.execute(ADOPT_CONVERSATIONS, {"b_owner": user.id})
        return user

    @writes
    def add_setup_token(self, conn: sa.Connection, token_hash: str) -> None:
        conn.execute(ADD_SETUP_TOKEN, {"b_token_hash": token_hash, "b_created_at": self._clock()})

    @reads
    def get_user(self, conn: sa.Connection, user_id: str) -> User:
        return _get_user(conn, user_id)

    @reads
    def find_login(self, conn: sa.Connection, email: str) -> tuple[User, str] | None:
        row = conn.execute(FIND_LOGIN, {"b_email_key": email_key(email)}).first()
        if row is None:
            return None
        return user_from_row(row), str(row[_USER_COUNT])

    @reads
    def first_admin(self, conn: sa.Connection) -> User | None:
        row = conn.execute(FIRST_ADMIN).first()
        return user_from_row(row) if row is not None else None

    @reads
    def list_users(self, conn: sa.Connection) -> list[User]:
        return [user_from_row(row) for row in conn.execute(LIST_USERS).all()]

    @writes
    def update_user(
        self,
        conn: sa.Connection,
        user_id: str,
        *,
        name: str | Unset | None = UNSET,
        role: str | Unset = UNSET,
        status: str | Unset = UNSET,
        password_hash: str | Unset = UNSET,
        end_credentials: bool = False,
        keep_session: str | None = None,
    ) -> User:
        if isinstance(role, str):
            _check_role(role)
        if isinstance(status, str):
            _check_status(status)
        if not (isinstance(role, Unset) and isinstance(status, Unset)):
            # Before reading: the admin check below must see every such change committed.
            self.threads.lock_invariants(conn)
        before = _get_user(conn, user_id)
        after_role = before.role if isinstance(role, Unset) else role
        after_status = before.status if isinstance(status, Unset) else status
        if _active_admin(before.role, before.status) and not _active_admin(
            after_role, after_status
        ):
            _check_another_active_admin(conn, user_id)
        changes: dict[str, Any] = {
            field: value
            for field, value in (
                ("name", name),
                ("role", role),
                ("status", status),
                ("password_hash", password_hash),
            )
            if value is not UNSET
        }
        changes["updated_at"] = self._clock()
        params = {f"b_{field}": value for field, value in changes.items()}
        params["b_id"] = user_id
        conn.execute(user_update(tuple(changes)), params)
        if end_credentials:
            if keep_session is None:
                conn.execute(DELETE_USER_SESSIONS, {"b_id": user_id})
            else:
                conn.execute(DELETE_USER_SESSIONS_BUT, {"b_id": user_id, "b_keep": keep_session})
            conn.execute(DELETE_USER_API_KEYS, {"b_id": user_id})
        changes.pop("password_hash", None)  # not a field of the record
        return dataclasses.replace(before, **changes)

    @writes
    def delete_user(self, conn: sa.Connection, user_id: str) -> None:
        self.threads.lock_invariants(conn)
        user = _get_user(conn, user_id)
        if _active_admin(user.role, user.status):
            _check_another_active_admin(conn, user_id)
        # Explicitly rather than by ON DELETE CASCADE, which SQLite only honours with the
        # foreign_keys pragma on; the conversations are not foreign keys at all.
        conn.execute(DELETE_USER_SESSIONS, {"b_id": user_id})
        conn.execute(DELETE_USER_API_KEYS, {"b_id": user_id})
        conn.execute(LOCK_OWNED_CONVERSATIONS, {"b_owner": user_id})
        conn.execute(DELETE_OWNED_MESSAGES, {"b_owner": user_id})
        conn.execute(DELETE_OWNED_CONVERSATIONS, {"b_owner": user_id})
        conn.execute(DELETE_USER, {"b_id": user_id})

    def _insert_user(
        self,
        conn: sa.Connection,
        email: str,
        name: str | None,
        password_hash: str,
        role: str,
        status: str,
    ) -> User:
        key = _checked_email_key(email)
        # The unique index would refuse a twin from another process with a driver error: under
        # the lock, the second one finds the first and gets the ConflictError.
        self.threads.lock_invariants(conn)
        if conn.execute(EMAIL_TAKEN, {"b_email_key": key}).first() is not None:
            raise ConflictError("an account with that email exists")
        now = self._clock()
        user = User(
            id=_new_id(),
            email=email.strip(),
            name=name,
            role=role,
            status=status,
            created_at=now,
            updated_at=now,
        )
        params = {f"b_{field}": getattr(user, field) for field in USER_FIELDS}
        conn.execute(INSERT_USER, {**params, "b_email_key": key, "b_password_hash": password_hash})
        return user

    # --- sessions -----------------------------------------------------------------------------

    @writes
    def create_session(self, conn: sa.Connection, user_id: str, token_hash: str) -> SessionRecord:
        _check_user_exists(conn, user_id)
        now = self._clock()
        session = SessionRecord(
            token_hash=token_hash, user_id=user_id, created_at=now, last_seen_at=now
        )
        conn.execute(
            INSERT_SESSION, {f"b_{field}": getattr(session, field) for field in SESSION_FIELDS}
        )
        return session

    @reads
    def find_session(
        self, conn: sa.Connection, token_hash: str
    ) -> tuple[User, SessionRecord] | None:
        row = conn.execute(FIND_SESSION, {"b_token_hash": token_hash}).first()
        if row is None:
            return None
        return user_from_row(row), session_from_row(row[_USER_COUNT:])

    @writes
    def touch_session(self, conn: sa.Connection, token_hash: str) -> None:
        conn.execute(TOUCH_SESSION, {"b_token_hash": token_hash, "b_last_seen_at": self._clock()})

    @writes
    def delete_session(self, conn: sa.Connection, token_hash: str) -> None:
        conn.execute(DELETE_SESSION, {"b_token_hash": token_hash})

    @writes
    def delete_sessions(
        self, conn: sa.Connection, *, idle_since: float, created_before: float
    ) -> int:
        result = conn.execute(
            DELETE_STALE_SESSIONS, {"b_idle_since": idle_since, "b_created_before": created_before}
        )
        return int(result.rowcount)

    # --- API keys -----------------------------------------------------------------------------

    @writes
    def create_api_key(
        self, conn: sa.Connection, user_id: str, *, name: str, prefix: str, key_hash: str
    ) -> ApiKey:
        _check_user_exists(conn, user_id)
        key = ApiKey(
            id=_new_id(),
            user_id=user_id,
            name=name,
            prefix=prefix,
            created_at=self._clock(),
            last_used_at=None,
        )
        params = {f"b_{field}": getattr(key, field) for field in API_KEY_FIELDS}
        conn.execute(INSERT_API_KEY, {**params, "b_key_hash": key_hash})
        return key

    @reads
    def find_api_key(self, conn: sa.Connection, key_hash: str) -> tuple[User, ApiKey] | None:
        row = conn.execute(FIND_API_KEY, {"b_key_hash": key_hash}).first()
        if row is None:
            return None
        return user_from_row(row), api_key_from_row(row[_USER_COUNT:])

    @writes
    def touch_api_key(self, conn: sa.Connection, key_id: str) -> None:
        conn.execute(TOUCH_API_KEY, {"b_id": key_id, "b_last_used_at": self._clock()})

    @reads
    def list_api_keys(self, conn: sa.Connection, user_id: str) -> list[ApiKey]:
        rows = conn.execute(LIST_API_KEYS, {"b_user_id": user_id}).all()
        return [api_key_from_row(row) for row in rows]

    @writes
    def delete_api_key(self, conn: sa.Connection, key_id: str, *, owner: str) -> None:
        # Another user's key is not found, with the same message as an unknown one.
        if not conn.execute(DELETE_API_KEY, {"b_id": key_id, "b_owner": owner}).rowcount:
            raise NotFoundError(f"API key {key_id!r} not found")


# --- helpers (each takes the connection of the caller's transaction) ---------------------------


def _new_id() -> str:
    return uuid.uuid4().hex


def _get_user(conn: sa.Connection, user_id: str) -> User:
    row = conn.execute(GET_USER, {"b_id": user_id}).first()
    if row is None:
        raise NotFoundError(f"user {user_id!r} not found")
    return user_from_row(row)


def _check_user_exists(conn: sa.Connection, user_id: str) -> None:
    if conn.execute(USER_EXISTS, {"b_id": user_id}).first() is None:
        raise NotFoundError(f"user {user_id!r} not found")


def _active_admin(role: str, status: str) -> bool:
    return role == "admin" and status == "active"


def _check_another_active_admin(conn: sa.Connection, user_id: str) -> None:
    """Before ``user_id`` stops being an active admin: refuse if no other one would be left."""
    if not conn.execute(OTHER_ACTIVE_ADMINS, {"b_id": user_id}).scalar_one():
        raise ConflictError("ssechat needs at least one active admin")


def _checked_email_key(email: str) -> str:
    key = email_key(email)
    if not key:
        raise InvalidRequestError("email must not be empty")
    if len(key) > EMAIL_KEY_LENGTH:
        raise InvalidRequestError(f"email must be at most {EMAIL_KEY_LENGTH} characters")
    return key


def _check_role(role: str) -> None:
    if role not in USER_ROLES:
        raise InvalidRequestError(f"role must be one of {', '.join(USER_ROLES)}, not {role!r}")


def _check_status(status: str) -> None:
    if status not in USER_STATUSES:
        raise InvalidRequestError(
            f"status must be one of {', '.join(USER_STATUSES)}, not {status!r}"
        )
