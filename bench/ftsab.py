"""``python -m bench.ftsab``: what SQLite's search index costs a turn's start and a saved batch,
under FTS5's merge settings, in the store alone.

For each variant a scratch database is made by ``open_store`` (so migrated as a server's is),
the variant's settings are written into the FTS5 tables' config (``INSERT INTO messages_fts
(messages_fts, rank) VALUES ('automerge', 8)``: persisted in the database, as a migration would
set them), then timed like ``bench.micro``'s starts: ``Store.start_exchange`` in conversations of
two finished turns (CPU per start, ``process_time``: every thread of the process), and
``Store.save_partial_answers`` of 100 answers of ~1 200 characters (CPU per answer). The
``no index`` variant drops the triggers: the floor the index is measured against. Best of
``--repeat`` rounds, after a warm-up; the machine may be shared, so compare variants of one run.

It writes nothing outside its temporary folder and never touches a server.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.micro import OWNER, _turns
from ssechat.store import Store, open_store

__all__ = ["VARIANTS", "main"]

VARIANTS: dict[str, list[str]] = {
    "default (automerge 4, crisismerge 16, usermerge 4, pgsz 4050)": [],
    "automerge 8": ["automerge=8"],
    "automerge 16": ["automerge=16"],
    "automerge 2": ["automerge=2"],
    "automerge 0 (off), crisismerge 64": ["automerge=0", "crisismerge=64"],
    "usermerge 16": ["usermerge=16"],
    "pgsz 1000": ["pgsz=1000"],
    "columnsize=0 (no document sizes kept)": ["table:columnsize=0"],
    "prefix='3' (a prefix index)": ["table:prefix='3'"],
    "no index (triggers dropped)": ["drop"],
}
_ANSWER = ("an answer about streaming servers and their costs " * 25)[:1200]


def _configure(path: Path, settings: list[str]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for setting in settings:
            if setting.startswith("table:"):  # the same table made again with an option
                db.execute("DROP TABLE messages_fts")
                db.execute(
                    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, "
                    f"content='search_messages', content_rowid='seq', {setting[6:]})"
                )
                continue
            if setting == "drop":
                for trigger in ("insert", "delete", "update"):
                    db.execute(f"DROP TRIGGER messages_fts_{trigger}")
                continue
            name, value = setting.split("=")
            db.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES (?, ?)", (name, int(value))
            )
    finally:
        db.close()


async def _round(store: Store, leaves: list[tuple[str, str]]) -> tuple[float, float]:
    """CPU µs per start over ``leaves``, then per answer of ten saves of 100 answers."""
    used = time.process_time()
    answers = [
        (
            await store.start_exchange(
                conversation, owner=OWNER, parent_id=parent, user_content="a question "
                "about how a server streams its answers", model="m",
            )
        ).answer.id
        for conversation, parent in leaves
    ]  # fmt: skip
    per_start = (time.process_time() - used) / len(leaves) * 1e6
    batch = answers[:100]
    used = time.process_time()
    for i in range(10):
        await store.save_partial_answers(dict.fromkeys(batch, _ANSWER[: 600 + 60 * i]))
    return per_start, (time.process_time() - used) / (10 * len(batch)) * 1e6


async def run(starts: int, repeat: int) -> list[tuple[str, float, float]]:
    """Every variant's best (start, saved answer) CPU µs; the variants take turns round by
    round, so that a burst of other work on the machine does not land on one variant only."""
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[Store] = []
        try:
            for i, settings in enumerate(VARIANTS.values()):
                path = Path(tmp) / f"v{i}.db"
                await (await open_store(str(path))).close()
                _configure(path, settings)
                stores.append(await open_store(str(path)))
            leaves = [await _turns(store, starts * (repeat + 1)) for store in stores]
            best = [(float("inf"), float("inf"))] * len(stores)
            for round_ in range(repeat + 1):
                for i, store in enumerate(stores):
                    got = await _round(store, leaves[i][round_ * starts : (round_ + 1) * starts])
                    if round_:  # the first round warms up
                        best[i] = (min(best[i][0], got[0]), min(best[i][1], got[1]))
        finally:
            for store in stores:
                await store.close()
    return [(name, *pair) for name, pair in zip(VARIANTS, best, strict=True)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ftsab", description=__doc__)
    parser.add_argument("--starts", type=int, default=200, help="starts per round")
    parser.add_argument("--repeat", type=int, default=6, help="timed rounds (best kept)")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.starts, args.repeat))
    print(f"{'variant':<64} {'µs/start':>9} {'µs/saved answer':>16}")
    for name, start, save in rows:
        print(f"{name:<64} {start:9.1f} {save:16.1f}")


if __name__ == "__main__":
    main()
