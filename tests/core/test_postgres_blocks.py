"""Blocks on PostgreSQL: a rolled-back merge leaves nothing, writers of one chain queue on its lock and
lose nothing, window versions never wait for another writer, block ids are never reused."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiosqlite
import asyncpg
import numpy as np
import pytest

from bot.core import blocks, blockwriter, schema
from bot.core.blocks import WINDOWS
from bot.core.blockwriter import BlockWriter
from bot.core.connections import Connections
from bot.core.engines import PostgresUrl
from bot.core.postgres.connections import PgDatabase
from bot.core.sqlconn import AsyncpgSql
from tests.core import pg_blockrows as blockrows
from tests.core.test_blocks import ORDER, Key, entries, exact_counter

WAIT = 10.0  # seconds a step may take before the test calls it stuck
WAITING_FOR_LOCK = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'"


class Failed(Exception):
    """Raised inside a transaction to roll it back."""


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 3 entries, re-cut 2 at a time: a merge rewrites, splits and adds many blocks."""
    monkeypatch.setattr(blocks, "BLOCK_ENTRIES", 3)
    monkeypatch.setattr(blockwriter, "WINDOW", 2)


async def add_chain(conn: asyncpg.Connection, channel: str) -> int:
    chain_id: int = await conn.fetchval(
        "INSERT INTO chains (platform, guild, channel, ord, run_length, fingerprint_scheme) "
        "VALUES ('p', 'g', $1, 2, 8, 2) RETURNING id",
        channel,
    )
    return chain_id


def batch(seed: int, n: int = 40) -> dict[Key, int]:
    rng = np.random.default_rng(seed)
    keys = {tuple(int(v) for v in rng.integers(0, 9, 4)) for _ in range(n)}
    return {(a, b, c + 1, d % 3 + 1): int(rng.integers(1, 4)) for a, b, c, d in keys}  # type: ignore[misc]


async def snapshot(conn: asyncpg.Connection) -> list[tuple[object, ...]]:
    """Every block row of both kinds, and every chain's window version."""
    rows = await conn.fetch(
        "SELECT 't', id, chain_id, direction, first, entries, data FROM transition_blocks "
        "UNION ALL SELECT 'w', id, chain_id, direction, first, entries, data FROM window_blocks ORDER BY 1, 2"
    )
    versions = await conn.fetch("SELECT id, window_version FROM chains ORDER BY id")
    return [tuple(r) for r in rows] + [tuple(r) for r in versions]


async def test_a_merge_in_a_transaction_that_rolls_back_leaves_nothing_behind(pg_url: str) -> None:
    db = await PgDatabase.open(PostgresUrl(pg_url))
    try:
        async with db.pool.acquire() as conn:
            old, new = await add_chain(conn, "old"), await add_chain(conn, "new")
            sql = AsyncpgSql(conn)
            async with conn.transaction():  # a chain with blocks already, committed
                await BlockWriter(sql).merge(old, ORDER, entries(batch(1)))
                await BlockWriter(sql, WINDOWS).merge(old, 0, blocks.window_entries([(5, 1, 1), (-7, 2, 2)]))
            before = await snapshot(conn)
            with pytest.raises(Failed):
                async with conn.transaction():
                    await BlockWriter(sql).merge(old, ORDER, entries(batch(2)))
                    await BlockWriter(sql).merge(new, ORDER, entries(batch(3)))
                    await BlockWriter(sql, WINDOWS).merge(old, 0, blocks.window_entries([(9, 1, 1)]))
                    await BlockWriter(sql).drop_author(old, ORDER, 1)
                    assert await snapshot(conn) != before  # the merges did write, inside the transaction
                    raise Failed
            assert await snapshot(conn) == before
            assert exact_counter(await blockrows.every(conn, old, ORDER)) == Counter(batch(1))
            assert len(await blockrows.every(conn, new, ORDER)) == 0
    finally:
        await db.close()


async def test_two_writers_merging_one_chain_at_once_queue_and_lose_nothing(pg_url: str) -> None:
    db = await PgDatabase.open(PostgresUrl(pg_url))
    try:
        async with db.pool.acquire() as setup:
            chain = await add_chain(setup, "c")
            async with setup.transaction():
                await BlockWriter(AsyncpgSql(setup)).merge(chain, ORDER, entries(batch(1)))
        first, second = await db.connect(), await db.connect()
        try:
            first_tx = first.transaction()
            await first_tx.start()
            await BlockWriter(AsyncpgSql(first)).merge(chain, ORDER, entries(batch(2)))

            async def merge_second() -> None:
                async with second.transaction():
                    await BlockWriter(AsyncpgSql(second)).merge(chain, ORDER, entries(batch(3)))

            waiting = asyncio.create_task(merge_second())
            # the second writer is seen queueing on the chain's lock (bounded by the test's timeout) ...
            while not await db.pool.fetchval(WAITING_FOR_LOCK, second.get_server_pid()):
                assert not waiting.done(), "the second writer did not wait for the first one's lock"
            await first_tx.commit()  # ... and re-cuts the blocks the first one committed
            async with asyncio.timeout(WAIT):
                await waiting
        finally:
            await first.close()
            await second.close()
        expected: Counter[Key] = Counter()
        for seed in (1, 2, 3):
            expected.update(batch(seed))
        async with db.pool.acquire() as conn:
            assert exact_counter(await blockrows.every(conn, chain, ORDER)) == expected
    finally:
        await db.close()


async def test_a_window_version_is_taken_without_waiting_for_another_writers_transaction(pg_url: str) -> None:
    db = await PgDatabase.open(PostgresUrl(pg_url))
    try:
        async with db.pool.acquire() as conn:
            one, two = await add_chain(conn, "one"), await add_chain(conn, "two")
        first, second = await db.connect(), await db.connect()
        try:
            async with first.transaction():  # open while the second writer changes another chain
                await BlockWriter(AsyncpgSql(first), WINDOWS).merge(
                    one, 0, blocks.window_entries([(1, 1, 1)])
                )
                async with asyncio.timeout(WAIT), second.transaction():
                    await BlockWriter(AsyncpgSql(second), WINDOWS).merge(
                        two, 0, blocks.window_entries([(2, 1, 1)])
                    )
        finally:
            await first.close()
            await second.close()
        versions = dict(await db.pool.fetch("SELECT id, window_version FROM chains"))
        assert versions[one] > 0 and versions[two] > 0 and versions[one] != versions[two]
    finally:
        await db.close()


async def test_block_ids_are_never_reused(pg_url: str) -> None:
    db = await PgDatabase.open(PostgresUrl(pg_url))
    try:
        async with db.pool.acquire() as conn:
            sql = AsyncpgSql(conn)
            async with conn.transaction():
                await BlockWriter(sql).merge(7, ORDER, entries(batch(1)))
            taken = {int(i) for (i,) in await conn.fetch("SELECT id FROM transition_blocks")}
            async with conn.transaction():
                await BlockWriter(sql).drop_chain(7)
            async with conn.transaction():
                await BlockWriter(sql).merge(7, ORDER, entries(batch(1)))
            again = {int(i) for (i,) in await conn.fetch("SELECT id FROM transition_blocks")}
            assert again and min(again) > max(taken)
    finally:
        await db.close()


async def test_blocks_are_written_only_inside_a_transaction(pg_url: str, tmp_path: Path) -> None:
    """Outside one, each statement would commit alone: a failure halfway would leave half a merge."""
    db = await PgDatabase.open(PostgresUrl(pg_url))
    try:
        async with db.pool.acquire() as conn:
            with pytest.raises(RuntimeError, match="only inside the writer's open transaction"):
                await BlockWriter(AsyncpgSql(conn)).merge(7, ORDER, entries(batch(1)))
            assert await conn.fetchval("SELECT count(*) FROM transition_blocks") == 0
    finally:
        await db.close()
    path = tmp_path / "b.sqlite3"
    lite = await aiosqlite.connect(path, isolation_level=None)
    try:
        await schema.migrate(lite, path)
        with pytest.raises(RuntimeError, match="only inside the writer's open transaction"):
            await BlockWriter(Connections(writer=lite)).merge(7, ORDER, entries(batch(1)))
        async with lite.execute("SELECT count(*) FROM transition_blocks") as cur:
            assert await cur.fetchone() == (0,)
    finally:
        await lite.close()
