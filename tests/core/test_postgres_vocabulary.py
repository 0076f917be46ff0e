"""PostgreSQL's registry and vocabulary with several writers: one id per name, refs that add up, no stale cache."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.core.engines import PostgresUrl
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.transactions import PgWrites
from bot.core.postgres.vocabulary import BadToken, Vocabulary, VocabularyChanged
from tests.core import pg_writers
from tests.pglocks import WAITERS

ROOT = Path(__file__).resolve().parents[2]
WAITING_ON_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


@dataclass
class Writer:
    """One process's vocabulary over a pool of its own, as another bot process would hold it."""

    db: PgDatabase
    writes: PgWrites
    vocabulary: Vocabulary

    async def resolve(self, texts: list[str], create: bool = True) -> dict[str, int]:
        async with self.writes.transaction():
            return await self.vocabulary.resolve(texts, create)

    async def add_refs(self, refs: dict[int, int]) -> None:
        async with self.writes.transaction():
            await self.vocabulary.add_refs(refs)


@pytest.fixture
async def open_writer(pg_url: str) -> AsyncIterator[Callable[[], Awaitable[Writer]]]:
    opened: list[PgDatabase] = []

    async def open_one() -> Writer:
        db = await PgDatabase.open(PostgresUrl(pg_url))
        opened.append(db)
        writes = PgWrites(db)
        return Writer(db, writes, Vocabulary(db, writes, 1000))

    try:
        yield open_one
    finally:
        for db in opened:
            await db.close()


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def wait_until_one_waits(url: str, task: asyncio.Task[Any]) -> None:
    """Until a connection of the database waits on a lock (bounded by the test's timeout)."""
    conn = await asyncpg.connect(url)
    try:
        while not await conn.fetchval(WAITING_ON_LOCK):
            assert not task.done(), f"the second writer did not wait: {task.result()!r}"
    finally:
        await conn.close()


async def test_three_processes_making_overlapping_names_at_once_agree_on_every_id(pg_url: str) -> None:
    barrier = 4243  # an advisory lock the processes wait on, released once all three wait
    gate = await asyncpg.connect(pg_url)
    try:
        await gate.execute("SELECT pg_advisory_lock($1)", barrier)
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.core.pg_writers",
                pg_url,
                str(barrier),
                str(index),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for index in range(3)
        ]
        while await gate.fetchval(WAITERS, barrier) < 3:  # bounded by the test's timeout
            assert all(proc.returncode is None for proc in procs), "a process ended before the start"
        await gate.execute("SELECT pg_advisory_unlock($1)", barrier)
        outputs = [await proc.communicate() for proc in procs]
    finally:
        await gate.close()
    assert [proc.returncode for proc in procs] == [0, 0, 0], [err.decode()[-800:] for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]

    for kind in ("tokens", "authors", "chains"):
        given: dict[str, set[int]] = {}
        for report in reports:
            for name, ids in report[kind].items():
                assert len(ids) == 1, f"one process was handed {len(ids)} ids for one {kind[:-1]}"
                given.setdefault(name, set()).update(ids)
        assert all(len(ids) == 1 for ids in given.values()), f"processes disagree on {kind}' ids"
        shared = set.intersection(*(set(report[kind]) for report in reports))
        assert shared, f"no {kind[:-1]} was made by all three processes: the test overlaps nothing"
        if kind == "tokens":
            rows = await fetch(pg_url, "SELECT text, id FROM tokens")
        elif kind == "authors":
            rows = await fetch(pg_url, "SELECT guild || '/' || external_id, id FROM authors")
        else:
            rows = await fetch(pg_url, "SELECT guild || '/' || channel, id FROM chains")
        stored = {str(name): {int(i)} for name, i in rows}
        assert len(stored) == len(rows)  # each name once
        assert stored == given  # every name made has one row, with the id every process was handed

    added: Counter[str] = Counter()
    for report in reports:
        added.update(report["refs"])
    refs = {str(text): int(n) for text, n in await fetch(pg_url, "SELECT text, refs FROM tokens")}
    assert refs == dict(added)
    assert set(added) <= set(pg_writers.POOL)


async def test_a_writer_waits_for_another_making_the_same_token_then_shares_its_id(
    pg_url: str, open_writer: Callable[[], Awaitable[Writer]]
) -> None:
    a, b = await open_writer(), await open_writer()
    async with a.writes.transaction():
        made = await a.vocabulary.resolve(["x", "y"], create=True)
        second = asyncio.create_task(b.resolve(["y", "z"]))
        await wait_until_one_waits(pg_url, second)  # b waits for a's uncommitted "y"
    assert (await second)["y"] == made["y"]
    assert await a.resolve(["x", "y", "z"], create=False) == {**made, "z": (await second)["z"]}


async def test_a_writer_waiting_on_a_token_whose_maker_rolls_back_makes_it_itself(
    pg_url: str, open_writer: Callable[[], Awaitable[Writer]]
) -> None:
    a, b = await open_writer(), await open_writer()
    with pytest.raises(RuntimeError):
        async with a.writes.transaction():
            lost = await a.vocabulary.resolve(["x"], create=True)
            second = asyncio.create_task(b.resolve(["x"]))
            await wait_until_one_waits(pg_url, second)
            raise RuntimeError("rolled back")
    made = await second
    assert made["x"] != lost["x"]
    assert await a.resolve(["x"], create=False) == made  # a's cache never held its rolled-back id
    assert [tuple(row) for row in await fetch(pg_url, "SELECT text, id FROM tokens")] == [("x", made["x"])]


async def test_a_token_another_process_deleted_is_not_used_from_the_cache(
    pg_url: str, open_writer: Callable[[], Awaitable[Writer]]
) -> None:
    a, b = await open_writer(), await open_writer()
    old = await a.resolve(["x"])
    await a.add_refs({old["x"]: 1})
    await b.add_refs({(await b.resolve(["x"], create=False))["x"]: -1})  # deleted at 0 refs
    with pytest.raises(VocabularyChanged, match=r"^1 tokens were deleted by another process"):
        async with a.writes.transaction():
            stale = await a.vocabulary.resolve(["x"], create=True)  # from a's cache
            assert stale == old
            await a.vocabulary.add_refs({stale["x"]: 1})
    new = await a.resolve(["x"])  # the retry reads the database again
    assert new["x"] != old["x"]
    await a.add_refs({new["x"]: 1})
    rows = await fetch(pg_url, "SELECT text, id, refs FROM tokens")
    assert [tuple(row) for row in rows] == [("x", new["x"], 1)]


async def test_refs_added_at_once_by_two_writers_add_up(open_writer: Callable[[], Awaitable[Writer]]) -> None:
    a, b = await open_writer(), await open_writer()
    ids = await a.resolve([f"t{i}" for i in range(50)])
    forward = {ids[f"t{i}"]: 1 for i in range(50)}
    backward = {ids[f"t{i}"]: 2 for i in reversed(range(50))}
    await asyncio.gather(*(w.add_refs(refs) for _ in range(5) for w, refs in ((a, forward), (b, backward))))
    async with a.writes.transaction():
        rows = await a.writes.w.fetch("SELECT refs FROM tokens")
    assert sorted(int(row[0]) for row in rows) == [15] * 50


async def test_a_token_postgresql_cannot_store_is_refused_in_one_line(
    open_writer: Callable[[], Awaitable[Writer]],
) -> None:
    a = await open_writer()
    with pytest.raises(BadToken, match=r"^a token with a NUL character cannot be stored in PostgreSQL$"):
        await a.resolve(["ok", "bad\x00"])
    assert await a.resolve(["ok"], create=False) == {}
    assert await a.vocabulary.token_id("bad\x00") is None
