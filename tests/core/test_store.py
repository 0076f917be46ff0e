"""The Store: migrations, the batched writer, backpressure and caches."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.brain import Brain
from bot.core.models import Message
from bot.core.store import LRU, SCHEMA_VERSION, SchemaTooNew, Store


def schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


async def test_migrations_applied_twice_are_a_no_op(db_path: Path) -> None:
    async with Store(db_path):
        pass
    first = schema(db_path)
    async with Store(db_path) as store:
        key = store.key
    async with Store(db_path) as store:
        assert store.key == key
    assert schema(db_path) == first
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_newer_schema_is_refused_and_left_untouched(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew, match="upgrade markovbot"):
        await Store(db_path).open()
    assert schema(db_path) == []


async def learn(brain: Brain, n: int, channel: str = "c") -> None:
    await brain.opt_in("t", "g", "a")
    await brain.set_channel("t", "g", channel, True)
    for i in range(n):
        await brain.learn(Message("t", "g", channel, "a", f"{channel}{i}", f"message number {i} here"))


async def test_the_flusher_commits_within_the_interval_without_being_asked(db_path: Path) -> None:
    brain = await Brain.open(db_path, flush_interval=0.05)
    try:
        await learn(brain, 10)
        for _ in range(100):
            if brain.store.pending == 0:
                break
            await asyncio.sleep(0.02)
        assert brain.store.pending == 0
        assert brain.store.committed == 10
    finally:
        await brain.close()


async def test_a_full_queue_makes_learning_wait_rather_than_grow(db_path: Path) -> None:
    brain = await Brain.open(db_path, flush_interval=1.0, batch_size=5, max_pending=8)
    seen: list[int] = []
    try:
        original = brain.store.enqueue

        async def watched(item: object) -> bool:
            result = await original(item)  # type: ignore[arg-type]
            seen.append(brain.store.pending)
            return result

        brain.store.enqueue = watched  # type: ignore[method-assign]
        await learn(brain, 50)
        await brain.flush()
        assert max(seen) <= 8
        assert brain.store.committed == 50
    finally:
        await brain.close()


async def test_close_flushes_what_is_pending(db_path: Path) -> None:
    brain = await Brain.open(db_path, flush_interval=1.0)
    await learn(brain, 7)
    await brain.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (7,)


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and len(cache) == 2


MEMORY_PROBE = """
import ctypes, sqlite3, sys, _sqlite3
from bot.core.sql import tune_sqlite
lib = ctypes.CDLL(_sqlite3.__file__)
lib.sqlite3_memory_used.restype = ctypes.c_int64
early = sqlite3.connect(":memory:") if sys.argv[1] == "open-first" else None
applied = tune_sqlite()
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (x)")
print(applied, lib.sqlite3_memory_used() > 0, conn.execute("SELECT count(*) FROM t").fetchone()[0])
"""


@pytest.mark.parametrize(("case", "expected"), [("fresh", "True False 0"), ("open-first", "False True 0")])
def test_sqlite_memory_statistics_go_off_only_while_no_connection_is_open(case: str, expected: str) -> None:
    # Off, every connection's allocations stop queueing on one process-wide mutex; with a
    # connection already open, shutting SQLite down to change it would be unsafe, so nothing changes.
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, case], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == expected.split()
