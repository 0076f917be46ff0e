"""The store's two connections and its write lock, shared by the store's parts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiosqlite

from bot.core.sql import Q


@dataclass
class Connections:
    """The writer and reader connections (None until the store opens) and the lock writes take."""

    writer: aiosqlite.Connection | None = None
    reader: aiosqlite.Connection | None = None
    write_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def w(self) -> aiosqlite.Connection:
        """The writer connection."""
        if self.writer is None:
            raise RuntimeError("store is not open")
        return self.writer

    @property
    def r(self) -> aiosqlite.Connection:
        """The reader connection."""
        if self.reader is None:
            raise RuntimeError("store is not open")
        return self.reader


SECURE_DELETE = "FAST"  # the writer's: deleted content zeroed in the pages its writes rewrite anyway
_SECURE_DELETE = {0: "OFF", 1: "ON", 2: "FAST"}  # what PRAGMA secure_delete reads, as it is set


@contextlib.asynccontextmanager
async def scrubbing(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """Writes inside the block zero what they delete, free pages too; after it the log is emptied
    into the file (and truncated), so that no older copy of a page stays in either."""
    (value,) = await pragma(conn, "secure_delete")
    before = _SECURE_DELETE.get(int(str(value)), "OFF")
    await pragma(conn, "secure_delete = ON")
    try:
        yield
    finally:
        await pragma(conn, f"secure_delete = {before}")
    await pragma(conn, "wal_checkpoint(TRUNCATE)")


async def pragma(conn: aiosqlite.Connection, text: str) -> tuple[object, ...]:
    """Run a PRAGMA and read its row to the end (a statement left unread would keep a COMMIT waiting)."""
    async with conn.execute(f"PRAGMA {text}") as cur:
        rows = list(await cur.fetchall())
    return tuple(rows[0]) if rows else ()


async def take_ids(w: aiosqlite.Connection, counter: str, n: int) -> int:
    """Reserve n ids from a counter of the database, inside the open transaction; the first."""
    async with w.execute(Q["take_ids"], (n, counter)) as cur:
        row = await cur.fetchone()
    assert row is not None, f"the counters table has no {counter}"
    return int(row[0])
