"""The store's two connections and its write lock, shared by the store's parts."""

from __future__ import annotations

import asyncio
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


async def take_ids(w: aiosqlite.Connection, counter: str, n: int) -> int:
    """Reserve n ids from a counter of the database, inside the open transaction; the first."""
    async with w.execute(Q["take_ids"], (n, counter)) as cur:
        row = await cur.fetchone()
    assert row is not None, f"the counters table has no {counter}"
    return int(row[0])
