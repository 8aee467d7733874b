"""ssechat.store on PostgreSQL: the accounts' rules hold across processes.

Two stores on one database are two processes to PostgreSQL (each its own connections). One
store's write is held inside its transaction (by its clock, read after its checks) while the
other's same write starts: the second must wait on the invariants' advisory lock — seen in
``pg_stat_activity``, never guessed by a sleep — and then see what the first committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TypeVar

import anyio
import anyio.to_thread
import pytest

from ssechat.errors import ConflictError
from ssechat.store import SQLStore, User

from .services import PostgresServer
from .store_support import Gate, Ticker

pytestmark = pytest.mark.anyio

T = TypeVar("T")


class GatedClock(Ticker):
    """Armed, the next reading holds the store's writer there, mid-transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: Gate | None = None

    def arm(self) -> Gate:
        self.gate = Gate()
        return self.gate

    def __call__(self) -> float:
        gate, self.gate = self.gate, None
        if gate is not None:
            gate.hold()
        return super().__call__()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[tuple[PostgresServer, str, str]]:
    name = postgres_server.create_database()
    try:
        yield postgres_server, name, postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
async def two(
    pg_url: tuple[PostgresServer, str, str],
) -> AsyncIterator[tuple[SQLStore, GatedClock, SQLStore]]:
    """Two stores on one database (two "processes"); the first with a gated clock."""
    _, _, url = pg_url
    clock = GatedClock()
    async with (
        await SQLStore.open(url, clock=clock) as first,
        await SQLStore.open(url, clock=Ticker(1_800_000_000.0)) as second,
    ):
        yield first, clock, second


async def waiting_on_the_lock(server: PostgresServer, database: str) -> None:
    """Return once a session of ``database`` waits for an advisory lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    )
    with anyio.fail_after(10):
        # Polled: the state is the server's, no event of ours says when it changes.
        while int(await anyio.to_thread.run_sync(server.psql, query, database)) == 0:  # noqa: ASYNC110
            await anyio.sleep(0.02)


async def race(
    server: PostgresServer, database: str, gate: Gate, held: Awaitable[T], other: Awaitable[T]
) -> list[T | BaseException]:
    """Run ``held`` (its transaction stops at ``gate``) and, once it is held, ``other``; let
    ``held`` go once ``other`` waits on the lock. Each one's outcome, in that order."""
    outcomes: list[T | BaseException] = [ValueError("not run"), ValueError("not run")]

    async def run(i: int, call: Awaitable[T]) -> None:
        try:
            outcomes[i] = await call
        except ConflictError as error:
            outcomes[i] = error

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(run, 0, held)
            await gate.wait_entered()
            group.start_soon(run, 1, other)
            await waiting_on_the_lock(server, database)
            gate.release()
    return outcomes


async def test_two_setups_at_once_make_one_admin(
    pg_url: tuple[PostgresServer, str, str], two: tuple[SQLStore, GatedClock, SQLStore]
) -> None:
    server, name, _ = pg_url
    first, clock, second = two
    gate = clock.arm()
    outcomes = await race(
        server,
        name,
        gate,
        first.accounts.create_first_admin(
            email="ann@example.com", name=None, password_hash="h", setup_token_hash=None
        ),
        second.accounts.create_first_admin(
            email="bob@example.com", name=None, password_hash="h", setup_token_hash=None
        ),
    )
    assert isinstance(outcomes[0], User)
    assert isinstance(outcomes[1], ConflictError)
    assert [user.email for user in await second.accounts.list_users()] == ["ann@example.com"]


async def test_two_admins_demoting_each_other_at_once_leave_one(
    pg_url: tuple[PostgresServer, str, str], two: tuple[SQLStore, GatedClock, SQLStore]
) -> None:
    server, name, _ = pg_url
    first, clock, second = two
    ann = await first.accounts.create_first_admin(
        email="ann@example.com", name=None, password_hash="h", setup_token_hash=None
    )
    bob = await second.accounts.create_user(
        email="bob@example.com", name=None, password_hash="h", role="admin", status="active"
    )
    gate = clock.arm()
    outcomes = await race(
        server,
        name,
        gate,
        first.accounts.update_user(bob.id, role="user"),
        second.accounts.update_user(ann.id, status="disabled"),
    )
    assert isinstance(outcomes[0], User)
    assert isinstance(outcomes[1], ConflictError)
    users = {user.id: user for user in await first.accounts.list_users()}
    assert (users[ann.id].role, users[ann.id].status) == ("admin", "active")
    assert users[bob.id].role == "user"


async def test_the_same_email_from_two_processes_is_one_conflict(
    pg_url: tuple[PostgresServer, str, str], two: tuple[SQLStore, GatedClock, SQLStore]
) -> None:
    server, name, _ = pg_url
    first, clock, second = two
    gate = clock.arm()
    outcomes = await race(
        server,
        name,
        gate,
        first.accounts.create_user(
            email="Cat@example.com", name=None, password_hash="h", role="user", status="active"
        ),
        second.accounts.create_user(
            email="cat@EXAMPLE.com", name=None, password_hash="h", role="user", status="active"
        ),
    )
    assert isinstance(outcomes[0], User)
    assert isinstance(outcomes[1], ConflictError)  # not the unique index's driver error
    assert await second.accounts.count_users() == 1
