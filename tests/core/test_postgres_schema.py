"""PostgreSQL's migrations: applied once, in order, recorded in the database, safe with several processes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import asyncpg
import pytest

from bot.core.engines import PostgresUrl
from bot.core.postgres import schema
from bot.core.postgres.connections import PgDatabase
from bot.core.schema import SchemaTooNew, StoreError
from tests.pglocks import WAITERS

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = [(number, name) for number, name, _ in schema.migrations()]


async def recorded(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    rows = await conn.fetch("SELECT version, name FROM markov_migrations ORDER BY version")
    return [(int(row[0]), str(row[1])) for row in rows]


def test_the_migrations_are_numbered_from_1_without_gaps() -> None:
    assert [number for number, _ in EXPECTED] == list(range(1, len(EXPECTED) + 1))
    assert len(EXPECTED) == schema.SCHEMA_VERSION


async def test_a_fresh_database_is_migrated_once_and_the_version_kept(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert await schema.version(conn) == 0
        assert await schema.migrate(conn) == schema.SCHEMA_VERSION
        first = await conn.fetch("SELECT version, applied_at FROM markov_migrations")
        assert await schema.migrate(conn) == schema.SCHEMA_VERSION
        assert await conn.fetch("SELECT version, applied_at FROM markov_migrations") == first
        assert await recorded(conn) == EXPECTED
        assert await schema.version(conn) == schema.SCHEMA_VERSION
    finally:
        await conn.close()


async def test_a_second_migrator_waits_for_the_first_then_finds_nothing_to_do(pg_url: str) -> None:
    first, second, watcher = [await asyncpg.connect(pg_url) for _ in range(3)]
    try:
        async with first.transaction():
            await first.execute("SELECT pg_advisory_xact_lock($1)", schema.MIGRATION_LOCK)
            waiting = asyncio.create_task(schema.migrate(second))
            # The second connection is seen waiting for the lock (bounded by the test's timeout).
            while not await watcher.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = $1",
                second.get_server_pid(),
            ):
                assert not waiting.done(), "the second migration did not wait for the lock"
            assert await schema.migrate(first) == schema.SCHEMA_VERSION  # inside the lock's transaction
        assert await waiting == schema.SCHEMA_VERSION
        assert await recorded(watcher) == EXPECTED
    finally:
        for conn in (first, second, watcher):
            await conn.close()


async def test_three_processes_migrating_one_database_at_once_all_succeed(pg_url: str) -> None:
    barrier = 4242  # an advisory lock the processes wait on, released once all three wait
    gate = await asyncpg.connect(pg_url)
    try:
        await gate.execute("SELECT pg_advisory_lock($1)", barrier)
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.core.pg_helper",
                pg_url,
                "migrate",
                str(barrier),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        while await gate.fetchval(WAITERS, barrier) < 3:  # bounded by the test's timeout
            assert all(proc.returncode is None for proc in procs), "a process ended before the start"
        await gate.execute("SELECT pg_advisory_unlock($1)", barrier)
        outputs = [await proc.communicate() for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], [err.decode()[-500:] for _, err in outputs]
        assert [out.decode().strip() for out, _ in outputs] == [str(schema.SCHEMA_VERSION)] * 3
        assert await recorded(gate) == EXPECTED
    finally:
        await gate.close()


async def test_another_programs_database_is_refused_and_left_alone(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        with pytest.raises(schema.NotMarkovbotDatabase, match="not a markovbot database") as caught:
            await schema.migrate(conn)
        assert "\n" not in str(caught.value)
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert [row[0] for row in tables] == ["invoices"]
    finally:
        await conn.close()


async def test_a_database_from_a_newer_markovbot_is_refused(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await schema.migrate(conn)
        await conn.execute("INSERT INTO markov_migrations (version, name) VALUES ($1, 'future.sql')", 999)
        with pytest.raises(SchemaTooNew, match="schema version 999, newer than"):
            await schema.migrate(conn)
    finally:
        await conn.close()


async def test_an_unreachable_server_is_one_line_without_the_password(unused_tcp_port: int) -> None:
    url = PostgresUrl(f"postgresql://ann:s3cret@127.0.0.1:{unused_tcp_port}/markov")
    with pytest.raises(StoreError, match="cannot use the PostgreSQL database") as caught:
        await PgDatabase.open(url)
    assert "\n" not in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert "ann:***@127.0.0.1" in str(caught.value)
