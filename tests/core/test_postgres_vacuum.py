"""The writer's VACUUM on PostgreSQL: a commit that leaves enough dead rows in a churned table gets them reclaimed."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.core.engines import PostgresUrl
from bot.core.postgres import vacuum
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.transactions import PgWrites
from bot.core.postgres.vacuum import Vacuum

ROWS = 2 * vacuum.DEAD_ROWS
STATS = """SELECT relname::text, n_dead_tup, vacuum_count FROM pg_stat_user_tables
WHERE relname IN ('transitions', 'transition_blocks')"""


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def writes(pg_url: str) -> AsyncIterator[tuple[PgWrites, Clock]]:
    db = await PgDatabase.open(PostgresUrl(pg_url))
    clock = Clock()
    writes = PgWrites(db)
    writes.vacuum = Vacuum(db, clock)
    try:
        yield writes, clock
    finally:
        await db.close()


async def churn(writes: PgWrites, rows: int) -> None:
    """Insert and delete delta rows and TOASTed blocks in one committed transaction (rows dead in each table)."""
    async with writes.transaction() as conn:
        await conn.execute(
            "INSERT INTO transitions (chain_id, ctx, next_id, author_id, count) "
            "SELECT 1, int4send(i), 2, 3, 1 FROM generate_series(1, $1) AS i",
            rows,
        )
        await conn.executemany(
            "INSERT INTO transition_blocks (chain_id, direction, first, entries, data) VALUES (1, 0, $1, 1, $2)",
            [(i.to_bytes(4, "big"), os.urandom(3700)) for i in range(rows)],
        )
        await conn.execute("DELETE FROM transitions")
        await conn.execute("DELETE FROM transition_blocks")
        # the counts reach the server's statistics as this backend goes idle after COMMIT, before it answers
        await conn.execute("SELECT pg_stat_force_next_flush()")


async def stats(writes: PgWrites) -> dict[str, tuple[int, int]]:
    async with writes.vacuum._db.pool.acquire() as conn:
        rows: list[asyncpg.Record] = await conn.fetch(STATS)
    return {name: (dead, runs) for name, dead, runs in rows}


async def test_dead_rows_are_vacuumed_after_a_commit(writes: tuple[PgWrites, Clock]) -> None:
    w, clock = writes
    clock.now += vacuum.CHECK_SECONDS
    await churn(w, ROWS)
    assert w.vacuum.runs == 2
    assert await stats(w) == {"transitions": (0, 1), "transition_blocks": (0, 1)}


async def test_no_vacuum_before_the_check_interval(writes: tuple[PgWrites, Clock]) -> None:
    w, clock = writes
    clock.now += vacuum.CHECK_SECONDS / 2
    await churn(w, ROWS)
    assert w.vacuum.runs == 0
    assert await stats(w) == {"transitions": (ROWS, 0), "transition_blocks": (ROWS, 0)}
    clock.now += vacuum.CHECK_SECONDS
    async with w.transaction():
        pass  # the next commit after the interval finds them
    assert w.vacuum.runs == 2
    assert await stats(w) == {"transitions": (0, 1), "transition_blocks": (0, 1)}


async def test_few_dead_rows_are_left_to_autovacuum(writes: tuple[PgWrites, Clock]) -> None:
    w, clock = writes
    clock.now += vacuum.CHECK_SECONDS
    await churn(w, vacuum.DEAD_ROWS // 2)
    assert w.vacuum.runs == 0
    dead = vacuum.DEAD_ROWS // 2
    assert await stats(w) == {"transitions": (dead, 0), "transition_blocks": (dead, 0)}


async def test_a_rolled_back_transaction_vacuums_nothing(writes: tuple[PgWrites, Clock]) -> None:
    w, clock = writes
    await churn(w, ROWS)  # before the interval: left dead
    clock.now += vacuum.CHECK_SECONDS
    with pytest.raises(RuntimeError):
        async with w.transaction():
            raise RuntimeError("rolled back")
    assert w.vacuum.runs == 0
    assert await stats(w) == {"transitions": (ROWS, 0), "transition_blocks": (ROWS, 0)}
