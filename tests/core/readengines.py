"""One learned corpus written into either engine as the writer leaves it, and what it must read back as.

The tests of the reads (walker, reports) write a chain straight into a SQLite file or a PostgreSQL
database: part of its counts merged into blocks (bot.core.blockwriter, as the writer merges them),
the rest as delta rows (some keys in both), its window fingerprints the same way, its messages and
tokens as rows. A Corpus also holds the oracle: every count summed from the messages themselves.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
import numpy as np

from bot.core import blocks, schema
from bot.core import chain as chainmod
from bot.core.blocks import WINDOWS
from bot.core.blockwriter import BlockWriter
from bot.core.connections import Connections
from bot.core.engines import PostgresUrl
from bot.core.fingerprints import NORMALISED, Fingerprinter
from bot.core.models import ChainInfo
from bot.core.postgres.connections import PgDatabase
from bot.core.sqlconn import AsyncpgSql

KEY = b"0123456789abcdef"
ORDER = 2
RUN = 4  # the chain's run length K
Tkey = tuple[int, ...]  # (c1..cn, next, author)


@dataclass
class Corpus:
    """Messages (author, tokens) and every row the writer would have kept for them."""

    messages: list[tuple[int, list[str]]]
    token_ids: dict[str, int] = field(default_factory=dict)
    blocks: Counter[Tkey] = field(default_factory=Counter)  # counts merged into blocks
    delta: Counter[Tkey] = field(default_factory=Counter)  # counts still in the transitions table
    window_blocks: Counter[tuple[int, int]] = field(default_factory=Counter)  # (fingerprint, author)
    window_delta: Counter[tuple[int, int]] = field(default_factory=Counter)
    message_rows: list[tuple[int, int, int, int, int]] = field(
        default_factory=list
    )  # id, author, fp, normal, n

    @property
    def counts(self) -> Counter[Tkey]:
        """The oracle: every transition's count, blocks and delta together."""
        return self.blocks + self.delta

    @property
    def windows(self) -> Counter[tuple[int, int]]:
        """The oracle: every window fingerprint's count by author."""
        return self.window_blocks + self.window_delta


def corpus(seed: int, messages: int = 60, words: int = 14, authors: int = 3, wide: int = 0) -> Corpus:
    """Random messages from a small vocabulary; every other message's counts go to the blocks.

    wide: messages of author 2 opening with as many distinct words (a wide state at the start).
    """
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(words)]
    said = [
        (rng.randint(1, authors), [rng.choice(vocab) for _ in range(rng.randint(1, 9))])
        for _ in range(messages)
    ]
    said += said[:5]  # some messages said twice
    said += [(2, [f"s{i}", vocab[0]]) for i in range(wide)]
    found = Corpus(said)
    fingerprints = Fingerprinter(KEY)
    for i, (author, tokens) in enumerate(said):
        ids = [found.token_ids.setdefault(t, chainmod.FIRST_TOKEN_ID + len(found.token_ids)) for t in tokens]
        counts, windows = (found.blocks, found.window_blocks) if i % 2 else (found.delta, found.window_delta)
        for ctx, next_id in chainmod.transitions(ids, ORDER):
            counts[(*chainmod.unpack(ctx), next_id, author)] += 1
        normal, runs = fingerprints.guarded(tokens, RUN, NORMALISED)
        assert normal is not None
        for fp in (*runs, normal):  # the normalised whole is kept among the windows
            windows[(fp, author)] += 1
        found.message_rows.append((1000 + i, author, fingerprints.message(tokens), normal, len(tokens)))
    return found


def forward(counts: Counter[Tkey]) -> np.ndarray:  # type: ignore[type-arg]
    """Counts as forward entries (c1..cn, next, author, count)."""
    rows = [(*k, v) for k, v in counts.items()]
    return np.array(rows, dtype=np.int64).reshape(-1, blocks.width(ORDER))


def window_rows(counts: Counter[tuple[int, int]]) -> list[tuple[int, int, int]]:
    return [(fp, author, k) for (fp, author), k in counts.items()]


def delta_rows(chain_id: int, counts: Counter[Tkey]) -> list[tuple[int, bytes, int, int, int]]:
    return [(chain_id, chainmod.pack(k[:ORDER]), k[ORDER], k[-1], v) for k, v in counts.items()]


def back_rows(chain_id: int, counts: Counter[Tkey]) -> list[tuple[int, int, bytes, int, int]]:
    """The delta's rows of transitions_back: (chain, next, context rotated left by one, author, count)."""
    return [(chain_id, k[ORDER], chainmod.pack((*k[1:ORDER], k[0])), k[-1], v) for k, v in counts.items()]


CHAIN_SQL = (
    "INSERT INTO chains (platform, guild, channel, ord, run_length, fingerprint_scheme) "
    "VALUES ('test', 'guild', {channel}, {order}, {run}, 2)"
)


async def write(where: Path | str, data: Corpus, channel: str = "chan") -> ChainInfo:
    """The corpus as one chain of a new (or the same) database, in one transaction; the chain's row."""
    if isinstance(where, Path):
        return await _write_sqlite(where, data, channel)
    return await _write_postgres(where, data, channel)


async def _write_sqlite(path: Path, data: Corpus, channel: str) -> ChainInfo:
    async with _sqlite(path) as conn:
        await conn.execute("BEGIN IMMEDIATE")
        cur = await conn.execute(CHAIN_SQL.format(channel="?", order=ORDER, run=RUN), (channel,))
        chain_id = int(cur.lastrowid or 0)
        await conn.executemany(
            "INSERT OR IGNORE INTO tokens (id, text, refs) VALUES (?, ?, 1)",
            [(i, t) for t, i in data.token_ids.items()],
        )
        db = Connections(writer=conn)
        await BlockWriter(db).merge(chain_id, ORDER, forward(data.blocks))
        await BlockWriter(db, WINDOWS).merge(
            chain_id, 0, blocks.window_entries(window_rows(data.window_blocks))
        )
        await conn.executemany(
            "INSERT INTO transitions (chain_id, ctx, next_id, author_id, count) VALUES (?, ?, ?, ?, ?)",
            delta_rows(chain_id, data.delta),
        )
        await conn.executemany(
            "INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count) VALUES (?, ?, ?, ?, ?)",
            back_rows(chain_id, data.delta),
        )
        await conn.executemany(
            "INSERT INTO windows (chain_id, fingerprint, author_id, count) VALUES (?, ?, ?, ?)",
            [(chain_id, *row) for row in window_rows(data.window_delta)],
        )
        await conn.executemany(
            "INSERT INTO messages (id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes) "
            "VALUES (?, ?, ?, ?, ?, ?, 0, 0)",
            [
                (i + chain_id * 100_000, chain_id, a, fp, normal, n)
                for i, a, fp, normal, n in data.message_rows
            ],
        )
        await conn.execute("COMMIT")
    return ChainInfo(chain_id, ORDER, RUN, NORMALISED)


@asynccontextmanager
async def _sqlite(path: Path, migrate: bool = True) -> AsyncIterator[aiosqlite.Connection]:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        if migrate:
            await conn.execute(
                "PRAGMA journal_mode = WAL"
            )  # as the store opens it: readers never block a commit
            await schema.migrate(conn, path)
        else:
            await conn.execute("PRAGMA busy_timeout = 5000")
        yield conn
    finally:
        await conn.close()


async def _write_postgres(url: str, data: Corpus, channel: str) -> ChainInfo:
    db = await PgDatabase.open(PostgresUrl(url), max_size=1)
    try:
        async with db.pool.acquire() as conn, conn.transaction():
            chain_id = int(
                await conn.fetchval(
                    CHAIN_SQL.format(channel="$1", order=ORDER, run=RUN) + " RETURNING id", channel
                )
            )
            await conn.executemany(
                "INSERT INTO tokens (id, text, refs) OVERRIDING SYSTEM VALUE VALUES ($1, $2, 1) "
                "ON CONFLICT DO NOTHING",
                [(i, t) for t, i in data.token_ids.items()],
            )
            sql = AsyncpgSql(conn)
            await BlockWriter(sql).merge(chain_id, ORDER, forward(data.blocks))
            await BlockWriter(sql, WINDOWS).merge(
                chain_id, 0, blocks.window_entries(window_rows(data.window_blocks))
            )
            await conn.executemany(
                "INSERT INTO transitions (chain_id, ctx, next_id, author_id, count) VALUES ($1, $2, $3, $4, $5)",
                delta_rows(chain_id, data.delta),
            )
            await conn.executemany(
                "INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count) "
                "VALUES ($1, $2, $3, $4, $5)",
                back_rows(chain_id, data.delta),
            )
            await conn.executemany(
                "INSERT INTO windows (chain_id, fingerprint, author_id, count) VALUES ($1, $2, $3, $4)",
                [(chain_id, *row) for row in window_rows(data.window_delta)],
            )
            await conn.executemany(
                "INSERT INTO messages (id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes) "
                "VALUES ($1, $2, $3, $4, $5, $6, 0, 0)",
                [
                    (i + chain_id * 100_000, chain_id, a, fp, normal, n)
                    for i, a, fp, normal, n in data.message_rows
                ],
            )
    finally:
        await db.close()
    return ChainInfo(chain_id, ORDER, RUN, NORMALISED)


async def forget(where: Path | str, chain: ChainInfo, data: Corpus, author: int) -> None:
    """Another connection removes an author's counts from the chain (blocks and delta) and bumps its
    removals, in one transaction, as a forget does; the corpus follows."""
    for counts in (data.blocks, data.delta):
        for k in [k for k in counts if k[-1] == author]:
            del counts[k]
    if isinstance(where, Path):
        async with _sqlite(where, migrate=False) as conn:
            await conn.execute("BEGIN IMMEDIATE")
            await BlockWriter(Connections(writer=conn)).drop_author(chain.id, ORDER, author)
            for table in ("transitions", "transitions_back"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE chain_id = ? AND author_id = ?", (chain.id, author)
                )
            await conn.execute("UPDATE chains SET removals = removals + 1 WHERE id = ?", (chain.id,))
            await conn.execute("COMMIT")
        return
    db = await PgDatabase.open(PostgresUrl(where), max_size=1)
    try:
        async with db.pool.acquire() as conn, conn.transaction():
            await BlockWriter(AsyncpgSql(conn)).drop_author(chain.id, ORDER, author)
            for table in ("transitions", "transitions_back"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE chain_id = $1 AND author_id = $2", chain.id, author
                )
            await conn.execute("UPDATE chains SET removals = removals + 1 WHERE id = $1", chain.id)
    finally:
        await db.close()


async def learn_delta(where: Path | str, chain: ChainInfo, data: Corpus, key: Tkey) -> None:
    """Another connection adds one count to the delta and the chain's counters in one transaction (live
    learning, as the writer does it: no removal), and the corpus follows."""
    data.delta[key] += 1
    row = (chain.id, chainmod.pack(key[:ORDER]), key[ORDER], key[-1])
    back = (chain.id, key[ORDER], chainmod.pack((*key[1:ORDER], key[0])), key[-1])
    if isinstance(where, Path):
        async with _sqlite(where, migrate=False) as conn:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.execute(
                "INSERT INTO transitions (chain_id, ctx, next_id, author_id, count) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT DO UPDATE SET count = count + 1",
                row,
            )
            await conn.execute(
                "INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count) VALUES (?, ?, ?, ?, 1) "
                "ON CONFLICT DO UPDATE SET count = count + 1",
                back,
            )
            await conn.execute(COUNTERS.replace("$1", "?"), (chain.id,))
            await conn.execute("COMMIT")
        return
    db = await PgDatabase.open(PostgresUrl(where), max_size=1)
    try:
        async with db.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO transitions (chain_id, ctx, next_id, author_id, count) VALUES ($1, $2, $3, $4, 1) "
                "ON CONFLICT (chain_id, ctx, next_id, author_id) DO UPDATE SET count = transitions.count + 1",
                *row,
            )
            await conn.execute(
                "INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count) "
                "VALUES ($1, $2, $3, $4, 1) "
                "ON CONFLICT (chain_id, next_id, rest, author_id) DO UPDATE SET count = transitions_back.count + 1",
                *back,
            )
            await conn.execute(COUNTERS, chain.id)
    finally:
        await db.close()


COUNTERS = "UPDATE chains SET messages_seen = messages_seen + 1, tokens_seen = tokens_seen + 1 WHERE id = $1"
