"""This process's write transaction on PostgreSQL: one at a time, on a pooled connection; parts hear how it ended.

SQLite's parts write on the writer connection inside the transaction the writer opened, and the
writer drops their caches when one fails. Here the parts (the vocabulary so far) hold what the
open transaction made apart from their caches, and ``on_end`` tells them whether it committed:
only then does it join a cache (an id from a transaction that rolled back names nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from bot.core.postgres.connections import PgDatabase

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    WriteConnection = PoolConnectionProxy[Any]


class PgWrites:
    """Opens this process's write transactions (one at a time, as SQLite's write lock) and tells parts how each ended."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self.lock = asyncio.Lock()
        self._conn: WriteConnection | None = None
        self._hooks: list[Callable[[bool], None]] = []

    def on_end(self, hook: Callable[[bool], None]) -> None:
        """Call hook(committed) whenever a write transaction ends."""
        self._hooks.append(hook)

    @property
    def w(self) -> WriteConnection:
        """The open write transaction's connection."""
        if self._conn is None:
            raise RuntimeError("no PostgreSQL write transaction is open")
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriteConnection]:
        """Run the block in one write transaction (READ COMMITTED), committed when it returns, else rolled back."""
        async with self.lock, self._db.pool.acquire() as conn:
            committed = False
            self._conn = conn
            try:
                async with conn.transaction():
                    yield conn
                committed = True
            finally:
                self._conn = None
                for hook in self._hooks:
                    hook(committed)
