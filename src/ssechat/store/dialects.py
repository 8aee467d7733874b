"""Which database a URL names, and that database's module: ``store.sqlite`` or
``store.postgres``, each holding all that is specific to it (URLs, engines, hooks).

``pick`` is the only place that tells them apart; the store's other modules use what it returns
and never test a dialect's name. This module must never hold SQL, and never put a URL in an
error (it may hold a password).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ssechat.store import postgres, sqlite

__all__ = ["Dialect", "SavePartial", "pick"]

SavePartial = Callable[
    [sa.Connection, Sequence[tuple[str, str]], Mapping[str, str] | None, float], None
]


@dataclass(frozen=True, slots=True)
class Dialect:
    """A database's URL and the hooks of its module."""

    url: URL
    create_engines: Callable[..., tuple[sa.Engine, sa.Engine]]
    """``(url, *, readers, writers)`` → the (reader, writer) engines."""
    lock_invariants: Callable[[sa.Connection], None]
    """Called first in a write that keeps a rule spanning rows: makes such writes one at a
    time across processes."""
    unreachable: Callable[[BaseException], bool]
    """Whether an error means the database cannot be reached (the store answers 503)."""
    save_partial: SavePartial | None = None
    """The runs' batched save in this database's own form, if it has a cheaper one than the
    portable executemany: ``(conn, [(id, text)], reasoning or None, now)``."""
    writers: int = 1
    """How many writes may run at once (SQLite: one, its file has one writer)."""
    index_search: Callable[[sa.Connection, int], int] | None = None
    """The search index's deferred work, if the database defers it: ``(conn, limit)`` indexes
    up to ``limit`` pending messages and says how many (SQLite; ``store.indexer`` runs it)."""


def pick(url_or_path: str | os.PathLike[str] | None) -> Dialect:
    """The dialect for a database URL or a SQLite file path (``None``: the default file).

    ``ValueError`` naming every supported form (never the URL) for anything else.
    """
    if isinstance(url_or_path, str) and postgres.accepts(url_or_path):
        url = postgres.resolve_url(url_or_path)
        return Dialect(
            url,
            postgres.create_engines,
            postgres.lock_invariants,
            postgres.unreachable,
            postgres.save_partial,
            postgres.WRITER_THREADS,
        )
    if (
        isinstance(url_or_path, str)
        and "://" in url_or_path
        and not url_or_path.startswith("sqlite")
    ):
        raise ValueError(
            f"unsupported database URL scheme; use {postgres.SUPPORTED}, or {sqlite.SUPPORTED}"
        )
    url = sqlite.resolve_url(url_or_path)
    return Dialect(
        url,
        sqlite.create_engines,
        sqlite.lock_invariants,
        sqlite.unreachable,
        index_search=sqlite.index_pending,
    )
