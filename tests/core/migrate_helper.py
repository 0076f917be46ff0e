"""A SQLite source with a row in every table, made by the real Brain; and both engines' tables, as rows to compare."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from bot.core.brain import Brain
from bot.core.models import Message
from bot.core.postgres.migrate import COPIED_META, TABLES
from bot.core.sql import Q
from tests.pglocks import WAITER as WAITER
from tests.pglocks import WAITERS as WAITERS

P, G, G2 = "discord", "guild-1", "guild-2"
WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "then",
    "the",
    "dog",
    "ran",
    "far",
    "away",
    "while",
    "a",
    "bird",
    "sang",
]
BLOCKING_TABLE = "transition_blocks"  # copied late: a copy stopped there has copied most tables already


def sentences(n: int, seed: int) -> list[str]:
    """n varied sentences over a small vocabulary (shared contexts, so hubs form)."""
    out = []
    for i in range(n):
        k = (i * 7 + seed) % len(WORDS)
        out.append(
            " ".join(WORDS[(k + j * (1 + i % 3)) % len(WORDS)] for j in range(5 + i % 6)) + f" w{i % 17}"
        )
    return out


async def _learn(
    brain: Brain, guild: str, channel: str, texts: list[str], authors: list[str], first: int
) -> None:
    for i, text in enumerate(texts):
        await brain.learn(Message(P, guild, channel, authors[i % len(authors)], str(first + i), text))
    await brain.flush()


async def build_source(path: Path, messages: int = 40, *, key: bytes | None = None) -> None:
    """A database with rows in every table: blocks, then delta rows, hubs, recent rows, a removal, guild state."""
    brain = await Brain.open(
        path, flush_interval=0.05, hub_rows=2, key=key, merge_rows=0
    )  # blocks at every commit
    try:
        for guild in (G, G2):
            for member in ("alice", "bob", "carol"):
                await brain.opt_in(P, guild, member)
            await brain.set_channel(P, guild, "general", True)
        await brain.set_channel(P, G, "random", True)
        await brain.update_settings(
            P, G2, chime_chance=0.25, reply_on_mention=False, copy_guard=False, order=3
        )
        await brain.set_state("matrix_since", "s123_456")
        await _learn(brain, G, "general", sentences(messages, 1), ["alice", "bob", "carol"], 1000)
        await _learn(brain, G2, "general", sentences(messages // 2, 5), ["bob", "carol"], 5000)
        await brain.unlearn_id(P, "1003")  # the removals counter moves; tokens may go (gaps in the ids)
    finally:
        await brain.close()
    # Delta rows: a store that merges only at a size this test never reaches.
    brain = await Brain.open(path, flush_interval=0.05, hub_rows=2, key=key, merge_rows=10**9)
    try:
        await _learn(brain, G, "random", sentences(messages // 2, 9), ["alice", "carol"], 9000)
        await _learn(brain, G, "general", ["a fresh line", "the cat ran far away"], ["bob"], 9500)
    finally:
        await brain.close()
    rows = sqlite_rows(path)
    empty = [name for name, _ in TABLES if not rows[name]]
    assert not empty, f"the source has no rows in {empty}: the test would not test them"
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM hubs").fetchone()[0], (
            "no hubs: their leaving out is not tested"
        )
    finally:
        conn.close()


def _plain(value: Any) -> Any:
    """One type per value on both engines: bytes for blobs, ints for SQLite's booleans."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, bool):
        return int(value)
    return value


def sqlite_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every copied table's rows, sorted, read with the copy's own statements."""
    conn = sqlite3.connect(path)
    try:
        return {
            name: sorted(tuple(map(_plain, r)) for r in conn.execute(Q[f"migrate_{name}"]))
            for name, _ in TABLES
        }
    finally:
        conn.close()


async def pg_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The same tables on PostgreSQL, in the same columns, sorted; meta without the copy's own row."""
    conn = await asyncpg.connect(url)
    try:
        out = {}
        for name, _ in TABLES:
            columns = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
                name,
            )
            names = ", ".join(str(c[0]) for c in columns)
            rows = await conn.fetch(f"SELECT {names} FROM {name}")
            out[name] = sorted(tuple(map(_plain, r.values())) for r in rows)
        out["meta"] = [r for r in out["meta"] if r[0] != COPIED_META]
        return out
    finally:
        await conn.close()


async def pg_table_count(url: str) -> int:
    """Tables in the database's schema (0: nothing was made)."""
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"))
    finally:
        await conn.close()


async def pg_snapshot(url: str) -> tuple[int, dict[str, list[tuple[Any, ...]]] | None]:
    """(tables, rows of a markovbot schema or None): what a refused copy must leave as it was."""
    tables = await pg_table_count(url)
    conn = await asyncpg.connect(url)
    try:
        ours = await conn.fetchval("SELECT to_regclass('meta') IS NOT NULL")
    finally:
        await conn.close()
    return tables, (await pg_rows_with_copy_row(url)) if ours else None


async def pg_rows_with_copy_row(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """pg_rows, meta whole."""
    rows = await pg_rows(url)
    conn = await asyncpg.connect(url)
    try:
        rows["meta"] = sorted(tuple(r.values()) for r in await conn.fetch("SELECT key, value FROM meta"))
    finally:
        await conn.close()
    return rows


BLOCK_TRIGGER = f"""
CREATE FUNCTION test_wait_for_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(4242);
    RETURN NEW;
END;
$$;
CREATE TRIGGER test_wait BEFORE INSERT ON {BLOCKING_TABLE} FOR EACH ROW EXECUTE FUNCTION test_wait_for_lock();
"""
DROP_BLOCK_TRIGGER = f"DROP TRIGGER test_wait ON {BLOCKING_TABLE}; DROP FUNCTION test_wait_for_lock();"
BLOCK_KEY = 4242
