"""ssechat.store.accounts: users (unique emails in any case, at least one active admin), the
first admin and the setup token, sessions and API keys (ended with their user), on real files."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

from ssechat.errors import ConflictError, InvalidRequestError, NotFoundError
from ssechat.store import LOCAL_OWNER, UNSET, Accounts, SQLStore, User, open_store

from .store_support import Database, Gate, Ticker, sql, table_rows

pytestmark = pytest.mark.anyio

ONE_ADMIN = "ssechat needs at least one active admin"


@pytest.fixture
async def store(database: Database) -> AsyncIterator[SQLStore]:
    async with await SQLStore.open(database, clock=Ticker()) as opened:
        yield opened


@pytest.fixture
def accounts(store: SQLStore) -> Accounts:
    return store.accounts


async def add_user(
    accounts: Accounts, email: str, *, role: str = "user", status: str = "active"
) -> User:
    return await accounts.create_user(
        email=email, name=None, password_hash=f"hash of {email}", role=role, status=status
    )


async def held_writer(
    store: SQLStore,
    monkeypatch: pytest.MonkeyPatch,
    calls: list[Callable[[], Awaitable[Any]]],
) -> list[Any]:
    """Run ``calls`` all at once while a writer is held, and let it go only once each of
    them has asked for its write: a check made outside its write transaction would have seen
    the state before any of them (on PostgreSQL the other writer threads may run them before:
    their rule is then kept by the lock they take). Return each one's outcome (its result or
    its error)."""
    gate = Gate()
    outcomes: list[Any] = [None] * len(calls)
    asked = 0
    all_asked = anyio.Event()
    write = store.threads.write

    async def counted_write(body: Callable[[sa.Connection], Any]) -> Any:
        nonlocal asked
        asked += 1
        if asked == len(calls):
            all_asked.set()
        return await write(body)

    async def run(i: int) -> None:
        try:
            outcomes[i] = await calls[i]()
        except (ConflictError, NotFoundError) as error:
            outcomes[i] = error

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write, lambda conn: gate.hold())
            await gate.wait_entered()
            monkeypatch.setattr(store.threads, "write", counted_write)
            for i in range(len(calls)):
                tg.start_soon(run, i)
            await all_asked.wait()
            gate.release()
    return outcomes


# --- users --------------------------------------------------------------------------------------


async def test_create_get_list_and_find_login(accounts: Accounts) -> None:
    assert await accounts.count_users() == 0
    assert await accounts.list_users() == []
    ann = await accounts.create_user(
        email="  Ann@Example.COM ", name="Ann", password_hash="h1", role="admin", status="active"
    )
    bob = await add_user(accounts, "bob@example.com", status="pending")
    assert len(ann.id) == 32
    assert (ann.email, ann.name, ann.role, ann.status) == (
        "Ann@Example.COM",
        "Ann",
        "admin",
        "active",
    )
    assert ann.created_at == ann.updated_at < bob.created_at
    assert await accounts.get_user(ann.id) == ann
    assert await accounts.list_users() == [ann, bob]  # oldest first
    assert await accounts.count_users() == 2
    assert "password_hash" not in ann.as_dict()

    # Any case, any surrounding spaces: the same account, with its password hash.
    for typed in ("ann@example.com", "ANN@EXAMPLE.COM", " ann@Example.com\t"):
        assert await accounts.find_login(typed) == (ann, "h1")
    assert await accounts.find_login("nobody@example.com") is None

    with pytest.raises(NotFoundError, match="user 'nope' not found"):
        await accounts.get_user("nope")


async def test_an_email_is_unique_in_any_case(accounts: Accounts, database: Database) -> None:
    first = await add_user(accounts, "Ann@Example.com")
    before = table_rows(database)
    for again in ("ann@example.com", "ANN@EXAMPLE.COM", "  ann@example.COM  "):
        with pytest.raises(ConflictError, match=r"^an account with that email exists$"):
            await add_user(accounts, again)
    assert table_rows(database) == before
    assert await accounts.list_users() == [first]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "root"}, "role must be one of admin, user, not 'root'"),
        ({"status": "banned"}, "status must be one of active, pending, disabled, not 'banned'"),
        ({"email": "   "}, "email must not be empty"),
        ({"email": "a" * 310 + "@example.com"}, "email must be at most 320 characters"),
    ],
)
async def test_create_user_refuses_bad_values(
    accounts: Accounts, database: Database, fields: dict[str, str], message: str
) -> None:
    values = {"email": "ann@example.com", "role": "user", "status": "active", **fields}
    before = table_rows(database)
    with pytest.raises(InvalidRequestError) as caught:
        await accounts.create_user(name=None, password_hash="h", **values)
    assert str(caught.value) == message
    assert table_rows(database) == before


async def test_update_user_changes_what_is_given(accounts: Accounts) -> None:
    admin = await add_user(accounts, "admin@example.com", role="admin")
    ann = await accounts.create_user(
        email="ann@example.com", name="Ann", password_hash="old", role="user", status="pending"
    )
    approved = await accounts.update_user(ann.id, status="active")
    assert (approved.name, approved.role, approved.status) == ("Ann", "user", "active")
    assert approved.updated_at > ann.updated_at
    assert approved.created_at == ann.created_at
    assert await accounts.get_user(ann.id) == approved

    renamed = await accounts.update_user(ann.id, name=None, role="admin", password_hash="new")
    assert (renamed.name, renamed.role, renamed.status) == (None, "admin", "active")
    assert await accounts.get_user(ann.id) == renamed
    assert await accounts.find_login("ann@example.com") == (renamed, "new")
    # UNSET (the default) leaves a field as it is.
    same = await accounts.update_user(ann.id, name=UNSET)
    assert (same.name, same.role) == (None, "admin")
    assert await accounts.get_user(admin.id) == admin


async def test_update_user_refusals_change_nothing(accounts: Accounts, database: Database) -> None:
    await add_user(accounts, "admin@example.com", role="admin")
    ann = await add_user(accounts, "ann@example.com")
    before = table_rows(database)
    with pytest.raises(InvalidRequestError, match="role must be one of admin, user"):
        await accounts.update_user(ann.id, role="owner", name="changed")
    with pytest.raises(InvalidRequestError, match="status must be one of active, pending"):
        await accounts.update_user(ann.id, status="gone", name="changed")
    with pytest.raises(NotFoundError, match="user 'nope' not found"):
        await accounts.update_user("nope", name="x")
    assert table_rows(database) == before


async def test_first_admin_is_the_oldest_active_one(accounts: Accounts) -> None:
    assert await accounts.first_admin() is None
    await add_user(accounts, "user@example.com")
    disabled = await add_user(accounts, "off@example.com", role="admin", status="disabled")
    assert await accounts.first_admin() is None
    older = await add_user(accounts, "older@example.com", role="admin")
    await add_user(accounts, "newer@example.com", role="admin")
    assert await accounts.first_admin() == older
    await accounts.update_user(disabled.id, status="active")
    assert await accounts.first_admin() == await accounts.get_user(disabled.id)


# --- at least one active admin ----------------------------------------------------------------


async def test_the_last_active_admin_cannot_go(accounts: Accounts, database: Database) -> None:
    admin = await add_user(accounts, "admin@example.com", role="admin")
    # Admins who are not active do not count.
    await add_user(accounts, "pending@example.com", role="admin", status="pending")
    await add_user(accounts, "disabled@example.com", role="admin", status="disabled")
    before = table_rows(database)
    changes: list[dict[str, Any]] = [
        {"role": "user"},
        {"status": "disabled"},
        {"status": "pending"},
        {"role": "user", "status": "active", "end_credentials": True},
    ]
    for change in changes:
        with pytest.raises(ConflictError) as caught:
            await accounts.update_user(admin.id, **change)
        assert str(caught.value) == ONE_ADMIN
    with pytest.raises(ConflictError) as caught:
        await accounts.delete_user(admin.id)
    assert str(caught.value) == ONE_ADMIN
    assert table_rows(database) == before

    # What keeps them an active admin is fine.
    kept = await accounts.update_user(admin.id, role="admin", status="active", name="Still")
    assert (kept.role, kept.status, kept.name) == ("admin", "active", "Still")


async def test_with_two_admins_one_may_go(accounts: Accounts) -> None:
    first = await add_user(accounts, "one@example.com", role="admin")
    second = await add_user(accounts, "two@example.com", role="admin")
    assert (await accounts.update_user(first.id, role="user")).role == "user"
    with pytest.raises(ConflictError, match=ONE_ADMIN):
        await accounts.update_user(second.id, status="disabled")
    # A user who is no admin may be disabled and deleted freely.
    await accounts.update_user(first.id, status="disabled")
    await accounts.delete_user(first.id)
    assert await accounts.list_users() == [second]


@pytest.mark.parametrize(
    "change",
    [{"role": "user"}, {"status": "disabled"}, "delete"],
    ids=["demote", "disable", "delete"],
)
async def test_two_admins_removing_each_other_at_once_leave_one(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any] | str
) -> None:
    accounts = store.accounts
    admins = [await add_user(accounts, f"admin{i}@example.com", role="admin") for i in range(2)]

    def call(user: User) -> Callable[[], Awaitable[Any]]:
        if change == "delete":
            return lambda: accounts.delete_user(user.id)
        assert isinstance(change, dict)
        return lambda: accounts.update_user(user.id, **change)

    outcomes = await held_writer(store, monkeypatch, [call(admin) for admin in admins])

    refused = [o for o in outcomes if isinstance(o, ConflictError)]
    assert len(refused) == 1
    assert str(refused[0]) == ONE_ADMIN
    active_admins = [
        u for u in await accounts.list_users() if (u.role, u.status) == ("admin", "active")
    ]
    assert len(active_admins) == 1


# --- the first admin ----------------------------------------------------------------------------


async def test_setup_with_a_token_makes_the_admin_and_uses_the_token_up(
    store: SQLStore, database: Database
) -> None:
    accounts = store.accounts
    await accounts.add_setup_token("a" * 64)
    await accounts.add_setup_token("b" * 64)  # a restart printed a second link
    before = table_rows(database)
    with pytest.raises(NotFoundError, match="setup token not found"):
        await accounts.create_first_admin(
            email="x@example.com", name=None, password_hash="h", setup_token_hash="c" * 64
        )
    assert table_rows(database) == before

    admin = await accounts.create_first_admin(
        email="Root@Example.com", name="Root", password_hash="h", setup_token_hash="a" * 64
    )
    assert (admin.email, admin.name, admin.role, admin.status) == (
        "Root@Example.com",
        "Root",
        "admin",
        "active",
    )
    assert await accounts.list_users() == [admin]
    assert await accounts.find_login("root@example.com") == (admin, "h")
    assert table_rows(database)["setup_tokens"] == []  # every token, not only the one used

    after = table_rows(database)
    for token in ("a" * 64, "b" * 64, None):
        with pytest.raises(ConflictError, match="an account exists"):
            await accounts.create_first_admin(
                email="late@example.com", name=None, password_hash="h", setup_token_hash=token
            )
    assert table_rows(database) == after


async def test_setup_without_a_token_and_after_any_account(accounts: Accounts) -> None:
    # The headless path (SSECHAT_ADMIN_EMAIL, ssechat users create): no token to check.
    admin = await accounts.create_first_admin(
        email="root@example.com", name=None, password_hash="h", setup_token_hash=None
    )
    assert (admin.role, admin.status) == ("admin", "active")


async def test_setup_is_refused_once_any_account_exists(accounts: Accounts) -> None:
    await add_user(accounts, "someone@example.com", status="pending")
    await accounts.add_setup_token("a" * 64)
    with pytest.raises(ConflictError, match="an account exists"):
        await accounts.create_first_admin(
            email="root@example.com", name=None, password_hash="h", setup_token_hash="a" * 64
        )
    assert await accounts.count_users() == 1


async def test_the_first_admin_adopts_the_conversations_without_an_owner(
    store: SQLStore, database: Database
) -> None:
    local = await store.create_conversation(title="accounts off", owner=LOCAL_OWNER)
    someone = await store.create_conversation(title="someone's", owner="someone")
    sql(
        database,
        "INSERT INTO conversations (id, title, created_at, updated_at) "
        "VALUES ('old', 'from before accounts', 1.0, 1.0)",
    )
    admin = await store.accounts.create_first_admin(
        email="root@example.com", name=None, password_hash="h", setup_token_hash=None
    )
    page, _ = await store.list_conversations(owner=admin.id)
    assert {c.id for c in page} == {local.id, "old"}
    assert all(c.owner == admin.id for c in page)
    assert await store.get_conversation(someone.id, owner="someone") == someone
    page, _ = await store.list_conversations(owner=LOCAL_OWNER)
    assert page == []


@pytest.mark.parametrize("stores", [1, 2], ids=["one store", "two stores on one file"])
async def test_two_setups_at_once_make_one_admin(database: Database, stores: int) -> None:
    async with (
        await open_store(database, clock=Ticker()) as first,
        await open_store(database, clock=Ticker()) as second,
    ):
        await first.accounts.add_setup_token("t" * 64)
        pool = [first, second][:stores]
        outcomes: list[Any] = []

        async def setup(i: int) -> None:
            try:
                outcomes.append(
                    await pool[i % stores].accounts.create_first_admin(
                        email=f"admin{i}@example.com",
                        name=None,
                        password_hash="h",
                        setup_token_hash="t" * 64,
                    )
                )
            except (ConflictError, NotFoundError) as error:
                outcomes.append(error)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(setup, i)
        made = [o for o in outcomes if isinstance(o, User)]
        assert len(made) == 1
        assert len(outcomes) == 6
        assert await first.accounts.list_users() == made


async def test_two_setups_queued_behind_a_write_make_one_admin(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = store.accounts

    def setup(i: int) -> Callable[[], Awaitable[Any]]:
        return lambda: accounts.create_first_admin(
            email=f"admin{i}@example.com", name=None, password_hash="h", setup_token_hash=None
        )

    outcomes = await held_writer(store, monkeypatch, [setup(0), setup(1)])
    # With one writer (SQLite) the first asked wins; with several (PostgreSQL) either may.
    made = [o for o in outcomes if isinstance(o, User)]
    assert len(made) == 1
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 1
    assert await accounts.list_users() == made


# --- sessions -----------------------------------------------------------------------------------


async def test_sessions_are_found_touched_and_ended(accounts: Accounts, database: Database) -> None:
    ann = await add_user(accounts, "ann@example.com")
    session = await accounts.create_session(ann.id, "s" * 64)
    assert (session.token_hash, session.user_id) == ("s" * 64, ann.id)
    assert session.created_at == session.last_seen_at
    assert await accounts.find_session("s" * 64) == (ann, session)
    assert await accounts.find_session("x" * 64) is None

    await accounts.touch_session("s" * 64)
    found = await accounts.find_session("s" * 64)
    assert found is not None
    assert found[1].last_seen_at > session.last_seen_at
    assert found[1].created_at == session.created_at
    await accounts.touch_session("x" * 64)  # gone: nothing to do

    # The user comes with it as it is now (a disabled user's session shows them disabled).
    disabled = await accounts.update_user(ann.id, status="disabled")
    found = await accounts.find_session("s" * 64)
    assert found is not None
    assert found[0] == disabled

    await accounts.delete_session("s" * 64)
    assert await accounts.find_session("s" * 64) is None
    await accounts.delete_session("s" * 64)  # twice is fine

    before = table_rows(database)
    with pytest.raises(NotFoundError, match="user 'nope' not found"):
        await accounts.create_session("nope", "n" * 64)
    assert table_rows(database) == before


async def test_delete_sessions_ends_the_idle_and_the_old(accounts: Accounts) -> None:
    # The Ticker clock: each write is one second after the one before.
    ann = await add_user(accounts, "ann@example.com")
    old = await accounts.create_session(ann.id, "o" * 64)  # made first, used lately
    idle = await accounts.create_session(ann.id, "i" * 64)  # never used again
    fresh = await accounts.create_session(ann.id, "f" * 64)
    await accounts.touch_session(old.token_hash)
    await accounts.touch_session(fresh.token_hash)
    touched = await accounts.find_session(fresh.token_hash)
    assert touched is not None

    ended = await accounts.delete_sessions(
        idle_since=idle.last_seen_at + 0.5, created_before=old.created_at + 0.5
    )
    assert ended == 2
    assert await accounts.find_session(old.token_hash) is None
    assert await accounts.find_session(idle.token_hash) is None
    assert await accounts.find_session(fresh.token_hash) == touched
    assert await accounts.delete_sessions(idle_since=0.0, created_before=0.0) == 0


# --- API keys -----------------------------------------------------------------------------------


async def test_api_keys_are_made_found_listed_and_revoked(
    accounts: Accounts, database: Database
) -> None:
    ann = await add_user(accounts, "ann@example.com")
    bob = await add_user(accounts, "bob@example.com")
    first = await accounts.create_api_key(ann.id, name="laptop", prefix="ssk_ab", key_hash="1" * 64)
    second = await accounts.create_api_key(ann.id, name="ci", prefix="ssk_cd", key_hash="2" * 64)
    bobs = await accounts.create_api_key(bob.id, name="bob's", prefix="ssk_ef", key_hash="3" * 64)
    assert (first.user_id, first.name, first.prefix, first.last_used_at) == (
        ann.id,
        "laptop",
        "ssk_ab",
        None,
    )
    assert "key_hash" not in first.as_dict()
    assert await accounts.list_api_keys(ann.id) == [second, first]  # newest first
    assert await accounts.list_api_keys(bob.id) == [bobs]
    assert await accounts.find_api_key("1" * 64) == (ann, first)
    assert await accounts.find_api_key("9" * 64) is None

    await accounts.touch_api_key(first.id)
    found = await accounts.find_api_key("1" * 64)
    assert found is not None
    assert found[1].last_used_at is not None
    assert found[1].last_used_at > first.created_at
    await accounts.touch_api_key("gone")  # nothing to do

    # Another user's key answers as an unknown one, and stays.
    before = table_rows(database)
    with pytest.raises(NotFoundError) as theirs:
        await accounts.delete_api_key(bobs.id, owner=ann.id)
    with pytest.raises(NotFoundError) as unknown:
        await accounts.delete_api_key("f" * 32, owner=ann.id)
    assert str(theirs.value) == str(unknown.value).replace("f" * 32, bobs.id)
    assert table_rows(database) == before

    await accounts.delete_api_key(first.id, owner=ann.id)
    assert await accounts.find_api_key("1" * 64) is None
    assert await accounts.list_api_keys(ann.id) == [second]
    with pytest.raises(NotFoundError, match="API key"):
        await accounts.delete_api_key(first.id, owner=ann.id)
    with pytest.raises(NotFoundError, match="user 'nope' not found"):
        await accounts.create_api_key("nope", name="x", prefix="p", key_hash="4" * 64)


# --- ending a user's credentials, deleting a user ------------------------------------------------


async def credentials(accounts: Accounts, user: User, tag: str) -> None:
    """Three sessions and two keys for ``user``, their hashes made of ``tag``."""
    for i in range(3):
        await accounts.create_session(user.id, f"{tag}s{i}".ljust(64, "0"))
    for i in range(2):
        await accounts.create_api_key(
            user.id, name=f"k{i}", prefix=tag, key_hash=f"{tag}k{i}".ljust(64, "0")
        )


def their_rows(path: Path, user_id: str) -> dict[str, list[Any]]:
    """``user_id``'s sessions and keys, as plain rows."""
    rows = table_rows(path)
    return {
        "sessions": [r for r in rows["sessions"] if r[1] == user_id],
        "api_keys": [r for r in rows["api_keys"] if r[1] == user_id],
    }


async def test_end_credentials_keeps_only_the_session_asked_for(
    accounts: Accounts, database: Database
) -> None:
    ann = await add_user(accounts, "ann@example.com")
    bob = await add_user(accounts, "bob@example.com")
    await credentials(accounts, ann, "a")
    await credentials(accounts, bob, "b")
    bobs = their_rows(database, bob.id)

    # A password change: the session that made it stays, the others and every key end.
    kept = "as1".ljust(64, "0")
    await accounts.update_user(ann.id, password_hash="new", end_credentials=True, keep_session=kept)
    assert [row[0] for row in their_rows(database, ann.id)["sessions"]] == [kept]
    assert their_rows(database, ann.id)["api_keys"] == []
    assert await accounts.find_api_key("ak0".ljust(64, "0")) is None
    assert their_rows(database, bob.id) == bobs

    # Disabling: everything ends.
    await accounts.update_user(bob.id, status="disabled", end_credentials=True)
    assert their_rows(database, bob.id) == {"sessions": [], "api_keys": []}
    # Without end_credentials, nothing ends.
    await accounts.update_user(ann.id, password_hash="newer")
    assert [row[0] for row in their_rows(database, ann.id)["sessions"]] == [kept]


async def test_delete_user_takes_everything_of_theirs_and_nothing_else(
    store: SQLStore, database: Database
) -> None:
    accounts = store.accounts
    await add_user(accounts, "admin@example.com", role="admin")
    ann = await add_user(accounts, "ann@example.com")
    bob = await add_user(accounts, "bob@example.com")
    for user, tag in ((ann, "a"), (bob, "b")):
        await credentials(accounts, user, tag)
        for i in range(2):
            conversation = await store.create_conversation(title=f"{tag}{i}", owner=user.id)
            started = await store.start_exchange(
                conversation.id, owner=user.id, user_content="q", model="m"
            )
            await store.update_message(started.answer.id, content="a", status="complete")
            await store.start_answer(started.answer.id, owner=user.id, model="m")
    before = table_rows(database)
    bobs_conversations = {r[0] for r in before["conversations"] if r[4] == bob.id}

    await accounts.delete_user(ann.id)

    after = table_rows(database)
    assert [r[0] for r in after["users"]] == sorted(r[0] for r in before["users"] if r[0] != ann.id)
    for table in ("sessions", "api_keys"):
        assert after[table] == [r for r in before[table] if r[1] != ann.id]
    assert after["conversations"] == [r for r in before["conversations"] if r[4] == bob.id]
    assert after["messages"] == [r for r in before["messages"] if r[2] in bobs_conversations]
    assert len(after["messages"]) == 6  # bob's two questions, each with two answers
    assert await accounts.find_session("as0".ljust(64, "0")) is None
    with pytest.raises(NotFoundError):
        await accounts.get_user(ann.id)
    with pytest.raises(NotFoundError, match="user"):
        await accounts.delete_user(ann.id)
