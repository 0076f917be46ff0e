"""The floor of live learning's SQLite work at a chain's size, and of a design that commits less of it.

    python -m benchmarks.live_floor DB [--batches 20]

DB: a database that live-learned a chain (e.g. 800,000 messages through `Brain.learn`); it is
copied, never changed. Each design runs the SQL alone, with sqlite3 on rows made beforehand and
the store's pragmas: no Python of the bot, no event loop. Rows are shaped as measured at 800,000
messages: per 2,000-message batch, 20,000 transition rows in each direction (four in five already
in the delta) and 8,000 window rows; a message row and a recent row each, under random keys.

- today: one transaction a batch (a commit a second at 2,000 msgs/s): the batch's upserts into
  both transition deltas and the windows, its message and recent rows, and the rolling merge's
  take (as many delta rows deleted, a key range from a cursor, as were upserted);
- log: each batch committed as one blob to a log in a file of its own (the commit a second),
  and every `every` batches the same statements run once for all of them in one transaction of
  the main file: the deltas' pages, which every batch rewrites nearly all of, are written once
  for `every` batches.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

BATCH = 2000  # the writer's default batch_size
ROWS = 20_000  # transition rows a batch upserts in each direction
WINDOW_ROWS = 8_000
PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "wal_autocheckpoint=16384")

Key = tuple[Any, ...]
Rows = tuple[list[Key], list[Key], list[Key], list[Key], list[Key]]
DELTAS = {"transitions": ("ctx",), "transitions_back": ("next_id", "rest")}


def _open(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute("PRAGMA " + pragma)
    return conn


def _mixed(rng: random.Random, existing: Sequence[Key], new: Callable[[], Key], k: int) -> list[Key]:
    """k keys in key order: four in five drawn from those the table holds, the rest new."""
    old = int(k * 0.8)
    rows = [existing[rng.randrange(len(existing))] for _ in range(old)] + [new() for _ in range(k - old)]
    return sorted(rows)


def batch_rows(rng: random.Random, keys: dict[str, list[Key]], batches: int) -> Rows:
    """The rows of `batches` batches, as the writer upserts and inserts them."""
    chain = keys["transitions"][0][0]

    def ctx() -> bytes:
        return struct.pack(">2I", rng.getrandbits(16), rng.getrandbits(16))

    forward = _mixed(
        rng,
        keys["transitions"],
        lambda: (chain, ctx(), rng.getrandbits(16), rng.randrange(100)),
        ROWS * batches,
    )
    backward = _mixed(
        rng,
        keys["transitions_back"],
        lambda: (chain, rng.getrandbits(16), ctx(), rng.randrange(100)),
        ROWS * batches,
    )
    windows = _mixed(
        rng, keys["windows"], lambda: (chain, rng.getrandbits(62), rng.randrange(100)), WINDOW_ROWS * batches
    )
    messages: list[Key] = [
        (rng.getrandbits(62), chain, rng.randrange(100), rng.getrandbits(62), rng.getrandbits(62), 10, 50, 50)
        for _ in range(BATCH * batches)
    ]
    recent: list[Key] = [(m[0], chain, m[2], int(time.time()), rng.randbytes(100)) for m in messages]
    return forward, backward, windows, messages, recent


def _take(conn: sqlite3.Connection, table: str, cursor: dict[str, Key], n: int) -> None:
    """The rolling merge's take: the next n delta rows after the cursor, read and deleted."""
    cols = ", ".join(DELTAS[table])
    marks = ", ".join("?" * len(DELTAS[table]))
    low = cursor[table]
    high = conn.execute(
        f"SELECT {cols} FROM {table} WHERE ({cols}) > ({marks}) ORDER BY {cols} LIMIT 1 OFFSET ?", (*low, n)
    ).fetchone()
    if high is None:
        conn.execute(f"DELETE FROM {table} WHERE ({cols}) > ({marks}) RETURNING count", low).fetchall()
        cursor[table] = (b"",) if table == "transitions" else (-1, b"")
    else:
        conn.execute(
            f"DELETE FROM {table} WHERE ({cols}) > ({marks}) AND ({cols}) <= ({marks}) RETURNING count",
            (*low, *high),
        ).fetchall()
        cursor[table] = tuple(high)


def apply(conn: sqlite3.Connection, rows: Rows, cursor: dict[str, Key], batches: int) -> None:
    """One transaction of the main file: what `batches` batches write there."""
    forward, backward, windows, messages, recent = rows
    conn.execute("BEGIN IMMEDIATE")
    upsert = "ON CONFLICT DO UPDATE SET count = count + 1"
    conn.executemany(f"INSERT INTO transitions VALUES (?, ?, ?, ?, 1) {upsert}", forward)
    conn.executemany(f"INSERT INTO transitions_back VALUES (?, ?, ?, ?, 1) {upsert}", backward)
    conn.executemany(f"INSERT INTO windows VALUES (?, ?, ?, 1) {upsert}", windows)
    conn.executemany("INSERT OR IGNORE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", messages)
    conn.executemany("INSERT OR IGNORE INTO recent_messages VALUES (?, ?, ?, ?, ?)", recent)
    for table in DELTAS:
        _take(conn, table, cursor, ROWS * batches)
    conn.execute("COMMIT")


def run(db: str, batches: int, every: int, seed: int = 1) -> float:
    """Seconds for `batches` batches (every: batches a log holds before it is applied; 1: today's)."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "copy.sqlite3")
        shutil.copy(db, path)
        conn = _open(path)
        keys = {
            "transitions": conn.execute(
                "SELECT chain_id, ctx, next_id, author_id FROM transitions"
            ).fetchall(),
            "transitions_back": conn.execute(
                "SELECT chain_id, next_id, rest, author_id FROM transitions_back"
            ).fetchall(),
            "windows": conn.execute("SELECT chain_id, fingerprint, author_id FROM windows").fetchall(),
        }
        work = [batch_rows(rng, keys, every) for _ in range(batches // every)]
        log = _open(os.path.join(tmp, "log.sqlite3"))
        log.execute("CREATE TABLE log (seq INTEGER PRIMARY KEY, batch BLOB NOT NULL)")
        cursor: dict[str, Key] = {"transitions": (b"",), "transitions_back": (-1, b"")}
        start = time.perf_counter()
        for rows in work:
            if every > 1:
                for _ in range(every):  # a batch's messages (token ids, keys, authors): ~60 bytes each
                    log.execute("BEGIN IMMEDIATE")
                    log.execute("INSERT INTO log (batch) VALUES (?)", (rng.randbytes(BATCH * 60),))
                    log.execute("COMMIT")
            apply(conn, rows, cursor, every)
            if every > 1:
                log.execute("DELETE FROM log")
        elapsed = time.perf_counter() - start
        conn.close()
        log.close()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    """Run each design on copies of the database and print messages per second of SQL alone."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", help="a database that live-learned a chain (copied, never changed)")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args(argv)
    for every, name in (
        (1, "today: a commit each batch"),
        (5, "log, applied every 5 batches"),
        (10, "log, applied every 10"),
    ):
        seconds = run(args.db, args.batches, every)
        print(
            f"{name:32s} {args.batches * BATCH / seconds:8,.0f} msgs/s of SQL alone ({seconds / args.batches * 1000:.0f} ms a batch)"
        )


if __name__ == "__main__":
    main()
