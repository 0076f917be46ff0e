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

import asyncpg
from asyncpg.transaction import Transaction

from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.vacuum import Vacuum

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    WriteConnection = PoolConnectionProxy[Any]


class PgWrites:
    """Opens this process's write transactions (one at a time, as SQLite's write lock) and tells parts how each ended."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self.lock = asyncio.Lock()
        self._conn: WriteConnection | None = None
        self._tx: Transaction | None = None
        self._hooks: list[Callable[[bool], None]] = []
        self.vacuum = Vacuum(db)

    def on_end(self, hook: Callable[[bool], None]) -> None:
        """Call hook(committed) whenever a write transaction ends."""
        self._hooks.append(hook)

    @property
    def w(self) -> WriteConnection:
        """The open write transaction's connection."""
        if self._conn is None:
            raise RuntimeError("no PostgreSQL write transaction is open")
        return self._conn

    @property
    def open(self) -> bool:
        """Whether a write transaction is open."""
        return self._conn is not None

    async def begin(self) -> WriteConnection:
        """Open a write transaction (READ COMMITTED) on a pooled connection, held until ``end``."""
        await self.lock.acquire()
        try:
            conn = await self._db.pool.acquire()
            try:
                transaction = conn.transaction()
                await transaction.start()
            except BaseException:
                await self._db.pool.release(conn)
                raise
        except BaseException:
            self.lock.release()
            raise
        self._conn, self._tx = conn, transaction
        return conn

    async def end(self, commit: bool) -> None:
        """Commit (or roll back) the open write transaction, release its connection, tell the parts; vacuum if due."""
        conn, transaction = self.w, self._tx
        assert transaction is not None
        committed = False
        try:
            if commit:
                await transaction.commit()
                committed = True
            else:
                await transaction.rollback()
        finally:
            self._conn = self._tx = None
            try:
                if not committed and conn.is_in_transaction():  # a failed COMMIT: the server rolls back
                    await conn.execute("ROLLBACK")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                pass  # the connection is broken: the pool discards it, the server rolled back
            finally:
                await self._db.pool.release(conn)
                self.lock.release()
                for hook in self._hooks:
                    hook(committed)
        if committed:  # connection and lock released: the VACUUM runs outside a transaction, blocking no one
            await self.vacuum.after_commit()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WriteConnection]:
        """Run the block in one write transaction (READ COMMITTED), committed when it returns, else rolled back."""
        conn = await self.begin()
        try:
            yield conn
        except BaseException:
            await self.end(False)
            raise
        await self.end(True)
