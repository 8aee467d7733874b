"""``AccountService``: sign-in, sessions, API keys, first-run setup and the admins' work.

A request's credentials are checked by ``authenticate``: an ``Authorization: Bearer`` API key
if the header is there (and then only that: a bad key is refused, never excused by a cookie), or
else the session cookie. A check that succeeded is cached for ``CACHE_SECONDS``, so a stream
start costs a dictionary lookup and a SHA-256, not a database read; whatever this process does
to a credential (sign-out, a revoked key, a disabled account, a new password) drops it from the
cache at once and ends its event streams (``StreamRegistry``). Another process sharing the
database sees such a change within ``CACHE_SECONDS``.

With ``SSECHAT_AUTH=off`` every request is the one implicit user: the oldest active admin if
there is one, else ``LOCAL_OWNER``.

It must never speak HTTP, log a secret, or let a pending, disabled or deleted account act.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ssechat.auth.limiter import LoginLimiter
from ssechat.auth.passwords import hash_password, verify_password
from ssechat.auth.principal import Principal
from ssechat.auth.streams import StreamRegistry, Watch
from ssechat.auth.tokens import hash_secret, new_api_key, new_token, prefix_of
from ssechat.config import Settings
from ssechat.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServiceUnavailableError,
    UnauthenticatedError,
)
from ssechat.store import LOCAL_OWNER, UNSET, Store, Unset, User
from ssechat.store.models import email_key

__all__ = ["CACHE_SECONDS", "AccountService", "SignedIn"]

logger = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
"""How long a checked credential is trusted without reading the database again."""
TOUCH_SECONDS = 60.0
"""A session's or key's last use is written at most this often (not on every request)."""
_CACHE_LIMIT = 10_000

OnRevoke = Callable[[str], Awaitable[None]]
Share = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the token for the cookie (sent once, never stored) and who it is."""

    token: str
    principal: Principal
    max_age: int


def _principal(user: User, via: Any, credential: str) -> Principal:
    return Principal(
        id=user.id, email=user.email, name=user.name, role=user.role, via=via, credential=credential
    )


class AccountService:
    def __init__(
        self, settings: Settings, store: Store, *, limiter: LoginLimiter | None = None
    ) -> None:
        self.settings = settings
        self._store = store
        self._accounts = store.accounts
        # In memory, or in Redis (SSECHAT_REDIS_URL) so that all processes count the same tries.
        self.limiter = limiter or LoginLimiter.for_settings(settings)
        self.streams = StreamRegistry()
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._pending: dict[str, asyncio.Task[Principal]] = {}
        self._local: Principal | None = None
        self._on_revoke: list[OnRevoke] = []
        self._share: Share | None = None

    async def close(self) -> None:
        """Close what the service opened itself (the sign-in limiter's Redis connections)."""
        await self.limiter.close()

    @property
    def enabled(self) -> bool:
        return self.settings.auth == "on"

    def on_revoke(self, callback: OnRevoke) -> None:
        """Call ``callback(user_id)`` when an account is disabled or deleted (to stop its runs)."""
        self._on_revoke.append(callback)

    async def start(self, *, setup_token: bool = True) -> str | None:
        """Get ready to serve: the implicit user (accounts off), or the headless admin
        (``SSECHAT_ADMIN_EMAIL``) if missing; expired sessions go. Returns a one-time setup token
        while no account exists (accounts on), for ``ssechat serve`` to print as a link (none
        made with ``setup_token=False``)."""
        settings = self.settings
        if not self.enabled:
            admin = await self._accounts.first_admin()
            owner = admin.id if admin is not None else LOCAL_OWNER
            await self._store.adopt_conversations(owner)
            self._local = Principal(
                id=owner,
                email=admin.email if admin else "local",
                name=admin.name if admin else "Local user",
                role="admin",
                via="local",
                credential="",
            )
            return None
        now = time.time()
        await self._accounts.delete_sessions(
            idle_since=now - settings.session_idle_seconds,
            created_before=now - settings.session_max_seconds,
        )
        if settings.admin_email:
            await self._ensure_admin(settings.admin_email, settings.admin_password)
        if not setup_token or await self._accounts.count_users():
            return None
        token = new_token()
        await self._accounts.add_setup_token(hash_secret(token))
        return token

    async def _ensure_admin(self, email: str, password: str) -> None:
        if await self._accounts.find_login(email) is not None:
            return
        await self.add_user(email=email, password=password, name=None, role="admin")
        logger.info("created the admin account named by SSECHAT_ADMIN_EMAIL")

    # --- public ---------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        setup_required = self.enabled and not await self._accounts.count_users()
        return {
            "auth": self.settings.auth,
            "setup_required": setup_required,
            "signup": self.settings.signup,
        }

    async def setup(
        self, token: str, *, email: str, password: str, name: str | None, address: str
    ) -> SignedIn:
        """Make the first admin with the setup link's token, and sign them in."""
        self._check_enabled()
        await self.limiter.check(None, address)
        password_hash = await hash_password(password)
        try:
            user = await self._accounts.create_first_admin(
                email=email,
                name=name,
                password_hash=password_hash,
                setup_token_hash=hash_secret(token),
            )
        except (NotFoundError, ConflictError):
            await self.limiter.failed(None, address)
            raise UnauthenticatedError(
                "this setup link is not valid: it works once, until the first admin exists"
            ) from None
        return await self._sign_in(user)

    async def signup(self, *, email: str, password: str, name: str | None) -> str:
        """A new account under the sign-up policy; its status (``active`` or ``pending``)."""
        self._check_enabled()
        if not await self._accounts.count_users():
            raise UnauthenticatedError("this server is not set up yet")
        policy = self.settings.signup
        if policy == "closed":
            raise ForbiddenError("sign-up is closed on this server: ask an admin for an account")
        status = "active" if policy == "open" else "pending"
        await self._accounts.create_user(
            email=email,
            name=name,
            password_hash=await hash_password(password),
            role="user",
            status=status,
        )
        return status

    async def login(self, email: str, password: str, *, address: str) -> SignedIn:
        """Check the password and open a session. The same ``UnauthenticatedError`` for an
        unknown email as for a wrong password; a pending or disabled account is told so only
        with the right password."""
        self._check_enabled()
        account = email_key(email)  # the form the store compares emails in
        await self.limiter.check(account, address)
        found = await self._accounts.find_login(email)
        user, stored = found if found is not None else (None, None)
        if not await verify_password(stored, password) or user is None:
            await self.limiter.failed(account, address)
            raise UnauthenticatedError("wrong email or password")
        if user.status == "pending":
            raise ForbiddenError("this account is waiting for an admin's approval")
        if user.status != "active":
            raise ForbiddenError("this account is disabled")
        return await self._sign_in(user)

    async def _sign_in(self, user: User) -> SignedIn:
        token = new_token()
        await self._accounts.create_session(user.id, hash_secret(token))
        principal = _principal(user, "session", "session:" + hash_secret(token))
        max_age = int(self.settings.session_max_seconds)
        return SignedIn(token=token, principal=principal, max_age=max_age)

    # --- every request --------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, session: str | None) -> Principal:
        """Who a request acts as: the key of its ``Authorization: Bearer`` header if it has one
        (and then only that key: a bad key is never excused by a cookie), else its session
        cookie's token. Another ``Authorization`` scheme (a proxy's Basic auth) is not ours and
        is ignored. ``UnauthenticatedError`` without valid credentials."""
        if self._local is not None:
            return self._local
        if authorization is not None:
            scheme, _, key = authorization.strip().partition(" ")
            if scheme.lower() == "bearer":
                key = key.strip()
                if not key:
                    raise UnauthenticatedError("send an API key as 'Authorization: Bearer <key>'")
                return await self._check("key:" + hash_secret(key))
        if session:
            return await self._check("session:" + hash_secret(session))
        raise UnauthenticatedError("sign in, or send an API key as 'Authorization: Bearer <key>'")

    async def _check(self, credential: str) -> Principal:
        cached = self._cache.get(credential)
        loop = asyncio.get_running_loop()
        if cached is not None and cached[1] > loop.time():
            return cached[0]
        # One database read per credential at a time, however many requests wait for it, in a
        # task of its own: a waiter that leaves (its client went away) cancels only its wait.
        lookup = self._pending.get(credential)
        if lookup is None:
            lookup = loop.create_task(self._lookup_and_cache(credential))
            self._pending[credential] = lookup
            lookup.add_done_callback(lambda done: self._settled(credential, done))
        return await asyncio.shield(lookup)

    async def _lookup_and_cache(self, credential: str) -> Principal:
        principal = await self._lookup(credential)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[credential] = (principal, asyncio.get_running_loop().time() + CACHE_SECONDS)
        return principal

    def _settled(self, credential: str, done: asyncio.Task[Principal]) -> None:
        if self._pending.get(credential) is done:
            del self._pending[credential]
        if not done.cancelled():
            done.exception()  # retrieved here: a lookup all of whose waiters left is no error

    async def _lookup(self, credential: str) -> Principal:
        kind, _, hashed = credential.partition(":")
        now = time.time()
        if kind == "key":
            found_key = await self._accounts.find_api_key(hashed)
            if found_key is None or found_key[0].status != "active":
                raise UnauthenticatedError("this API key is not valid (revoked, or never was)")
            user, key = found_key
            if key.last_used_at is None or now - key.last_used_at > TOUCH_SECONDS:
                await self._accounts.touch_api_key(key.id)
            return _principal(user, "key", "key:" + key.id)
        found = await self._accounts.find_session(hashed)
        if found is None or found[0].status != "active":
            raise UnauthenticatedError("your session has ended: sign in again")
        user, session = found
        settings = self.settings
        if (
            now - session.last_seen_at > settings.session_idle_seconds
            or now - session.created_at > settings.session_max_seconds
        ):
            await self._accounts.delete_session(hashed)
            raise UnauthenticatedError("your session has expired: sign in again")
        if now - session.last_seen_at > TOUCH_SECONDS:
            await self._accounts.touch_session(hashed)
        return _principal(user, "session", credential)

    def _forget(self, user_id: str, *, keep: str | None = None, end_streams: bool = True) -> None:
        """Drop the user's cached credentials (but ``keep``) and end their streams."""
        for credential, (principal, _) in list(self._cache.items()):
            if principal.id == user_id and credential != keep:
                del self._cache[credential]
        if end_streams:
            self.streams.end(user_id, keep=keep)

    def _forget_credential(self, user_id: str, credential: str) -> None:
        """Drop one credential (``key:<id>``, ``session:<hash>``) from the cache; end its
        streams."""
        for cached, (who, _) in list(self._cache.items()):
            if who.credential == credential:
                del self._cache[cached]
        self.streams.end(user_id, credential=credential)

    def share_revocations(self, publish: Share) -> None:
        """With several processes: ``publish`` each revocation made here, so that every other
        process ends the streams it serves with those credentials (``revoked_elsewhere``)."""
        self._share = publish

    async def revoked_elsewhere(self, message: Mapping[str, Any]) -> None:
        """Another process revoked credentials (a message ``share_revocations`` published):
        forget them here too, and end the streams this process serves with them."""
        user_id = message.get("user")
        if not isinstance(user_id, str):
            return
        credential = message.get("credential")
        if isinstance(credential, str):
            self._forget_credential(user_id, credential)
        else:
            keep = message.get("keep")
            self._forget(
                user_id,
                keep=keep if isinstance(keep, str) else None,
                end_streams=bool(message.get("streams", True)),
            )

    async def _shared(self, user_id: str, **what: Any) -> None:
        if self._share is None:
            return
        try:
            await self._share({"user": user_id, **what})
        except ServiceUnavailableError:
            # Other processes read the database again within CACHE_SECONDS: only their open
            # streams go on, until Redis is back.
            logger.warning("could not tell the other processes of a revocation (Redis is down)")

    def watch(self, principal: Principal) -> Watch | None:
        """What an event stream of ``principal``'s registers with, so that revoking their
        credentials ends it (``EventStreamResponse(watch=...)``)."""
        if principal.via == "local":
            return None
        streams, user_id, credential = self.streams, principal.id, principal.credential
        return lambda stop: streams.add(user_id, credential, stop)

    # --- the signed-in user ---------------------------------------------------------------

    async def logout(self, principal: Principal) -> None:
        if principal.via == "session":
            hashed = principal.credential.partition(":")[2]
            await self._accounts.delete_session(hashed)
            self._cache.pop(principal.credential, None)
            self.streams.end(principal.id, credential=principal.credential)
            await self._shared(principal.id, credential=principal.credential)

    async def change_password(
        self, principal: Principal, current: str, new: str, *, address: str
    ) -> None:
        """Set a new password; every other session and every API key of the user ends."""
        self._check_enabled()
        account = email_key(principal.email)
        await self.limiter.check(account, address)
        found = await self._accounts.find_login(principal.email)
        stored = found[1] if found is not None and found[0].id == principal.id else None
        if not await verify_password(stored, current):
            await self.limiter.failed(account, address)
            raise ForbiddenError("the current password is not right")
        keep = principal.credential if principal.via == "session" else None
        await self._accounts.update_user(
            principal.id,
            password_hash=await hash_password(new),
            end_credentials=True,
            keep_session=keep.partition(":")[2] if keep else None,
        )
        self._forget(principal.id, keep=keep)
        await self._shared(principal.id, keep=keep)

    async def create_key(self, principal: Principal, name: str) -> dict[str, str]:
        self._check_enabled()
        key = new_api_key()
        record = await self._accounts.create_api_key(
            principal.id, name=name, prefix=prefix_of(key), key_hash=hash_secret(key)
        )
        return {"id": record.id, "name": record.name, "prefix": record.prefix, "key": key}

    async def list_keys(self, principal: Principal) -> list[dict[str, Any]]:
        self._check_enabled()
        return [key.as_dict() for key in await self._accounts.list_api_keys(principal.id)]

    async def revoke_key(self, principal: Principal, key_id: str) -> None:
        self._check_enabled()
        await self._accounts.delete_api_key(key_id, owner=principal.id)
        credential = "key:" + key_id
        self._forget_credential(principal.id, credential)
        await self._shared(principal.id, credential=credential)

    # --- admins ---------------------------------------------------------------------------

    def _check_admin(self, principal: Principal) -> None:
        if not principal.is_admin:
            raise ForbiddenError("only an admin may manage accounts")

    async def list_users(self, principal: Principal) -> list[dict[str, Any]]:
        self._check_admin(principal)
        return [user.as_dict() for user in await self._accounts.list_users()]

    async def create_user(
        self,
        principal: Principal,
        *,
        email: str,
        password: str,
        name: str | None,
        role: str,
    ) -> dict[str, Any]:
        self._check_admin(principal)
        self._check_enabled()
        user = await self.add_user(email=email, password=password, name=name, role=role)
        return user.as_dict()

    async def add_user(self, *, email: str, password: str, name: str | None, role: str) -> User:
        """A new active account, for an admin or ``ssechat users create``. The first account
        made on a server is its first admin, who adopts the conversations without an owner."""
        password_hash = await hash_password(password)
        if role == "admin" and not await self._accounts.count_users():
            try:
                return await self._accounts.create_first_admin(
                    email=email, name=name, password_hash=password_hash, setup_token_hash=None
                )
            except ConflictError:
                pass  # someone else made the first account meanwhile: this is just another
        return await self._accounts.create_user(
            email=email, name=name, password_hash=password_hash, role=role, status="active"
        )

    async def update_user(
        self,
        principal: Principal,
        user_id: str,
        *,
        role: str | None,
        status: str | None,
        password: str | None,
    ) -> dict[str, Any]:
        """Approve, disable, enable, change the role of or reset the password of an account.
        Anything but a role change to ``admin`` or status ``active`` ends its credentials."""
        self._check_admin(principal)
        self._check_enabled()
        await self._accounts.get_user(user_id)  # a clear 404 before any hashing
        if user_id == principal.id and status not in (None, "active"):
            raise ConflictError("you cannot disable your own account; ask another admin")
        new_hash: str | Unset = await hash_password(password) if password else UNSET
        end = bool(password) or status in ("pending", "disabled")
        user = await self._accounts.update_user(
            user_id,
            role=role if role is not None else UNSET,
            status=status if status is not None else UNSET,
            password_hash=new_hash,
            end_credentials=end,
        )
        self._forget(user_id, end_streams=end)  # a new role only needs a fresh read
        await self._shared(user_id, streams=end)
        if user.status != "active":
            await self._revoked(user_id)
        return user.as_dict()

    async def delete_user(self, principal: Principal, user_id: str) -> None:
        self._check_admin(principal)
        self._check_enabled()
        if user_id == principal.id:
            raise ConflictError("you cannot delete your own account; ask another admin")
        await self._accounts.get_user(user_id)
        await self._revoked(user_id)  # its runs stop before its conversations go
        await self._accounts.delete_user(user_id)
        self._forget(user_id)
        await self._shared(user_id)

    async def _revoked(self, user_id: str) -> None:
        for callback in self._on_revoke:
            await callback(user_id)

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise NotFoundError("accounts are off on this server (SSECHAT_AUTH=off)")
