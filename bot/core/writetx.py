"""How the writer begins, commits and rolls back its transactions: one implementation per engine.

SQLite: BEGIN IMMEDIATE on the writer connection, and PRAGMA data_version to tell whether another
connection committed since the writer's caches were filled. PostgreSQL: a pooled connection held
for the transaction (bot.core.postgres.transactions.PgWrites); its parts cache only committed rows
that never change, so there is nothing to revalidate, and a deadlock or a token another process
deleted meanwhile makes the writer run the whole transaction again.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from bot.core.connections import Connections, scrubbing
from bot.core.sqlconn import Row, SqlConn, SqliteSql

if TYPE_CHECKING:
    from bot.core.postgres.connections import PgDatabase
    from bot.core.postgres.transactions import PgWrites

log = logging.getLogger(__name__)

RETRIES = 5  # runs of a write transaction that met a deadlock or a vanished token (PostgreSQL)


class WriteTx(Protocol):
    """One engine's write transactions, as the writer sees them."""

    @property
    def sql(self) -> SqlConn:
        """The open transaction's connection, through the SQL seam."""
        ...

    @property
    def open(self) -> bool:
        """Whether a write transaction is open."""
        ...

    async def begin(self) -> bool:
        """Begin a write transaction; True when another writer committed since the writer's caches
        were last valid (drop them)."""
        ...

    async def commit(self) -> None:
        """Commit the open transaction."""

    async def rollback(self) -> None:
        """Roll back the open transaction, if one is (an engine may have rolled back already)."""

    def invalidate(self) -> None:
        """The writer dropped its caches: the next begin says they are stale."""

    def retryable(self, exc: BaseException) -> bool:
        """Whether a transaction that failed so may simply run again."""
        ...

    def scrubbing(self) -> AbstractAsyncContextManager[None]:
        """Around a transaction that deletes a member's or a chain's rows: leave none of their bytes behind."""
        ...


class Transaction(Protocol):
    """The writer's runner of one write transaction (Writer.transaction), as its parts call it."""

    def __call__(self, work: Callable[[], Awaitable[None]], *, join_bulk: bool = False) -> Awaitable[None]:
        """Run work in one write transaction (join_bulk: inside an import's open one)."""
        ...


class SqliteTx:
    """SQLite's: BEGIN IMMEDIATE on the writer connection, revalidated by PRAGMA data_version."""

    def __init__(self, db: Connections) -> None:
        self._db = db
        self.sql: SqlConn = SqliteSql(db)
        self._version: int | None = None  # data_version the writer's caches describe (None: stale)

    @property
    def open(self) -> bool:
        """Whether a write transaction is open."""
        return self._db.w.in_transaction

    async def begin(self) -> bool:
        """BEGIN IMMEDIATE; True when another connection committed since the caches were valid."""
        await self._db.w.execute("BEGIN IMMEDIATE")
        async with self._db.w.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else -1
        stale = version != self._version
        self._version = version
        return stale

    async def commit(self) -> None:
        """COMMIT."""
        await self._db.w.execute("COMMIT")

    async def rollback(self) -> None:
        """ROLLBACK unless SQLite did already (on a full disk, say)."""
        try:
            if self._db.w.in_transaction:
                await self._db.w.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback failed (%s); the next transaction reads the file again", exc)

    def invalidate(self) -> None:
        """The next begin says the caches are stale."""
        self._version = None

    def retryable(self, exc: BaseException) -> bool:
        """Never: one writer at a time, and busy_timeout waits for the file's lock."""
        return False

    def scrubbing(self) -> AbstractAsyncContextManager[None]:
        """Deleted content zeroed and the log emptied into the file (bot.core.connections.scrubbing)."""
        return scrubbing(self._db.w)


class PgTx:
    """PostgreSQL's: PgWrites' transaction on a pooled connection, held from begin to commit."""

    def __init__(self, writes: PgWrites) -> None:
        from bot.core.sqlconn import AsyncpgSql

        self._writes = writes
        self.sql: SqlConn = AsyncpgSql(lambda: writes.w)

    @property
    def open(self) -> bool:
        """Whether a write transaction is open."""
        return self._writes.open

    async def begin(self) -> bool:
        """Begin; never stale (the parts cache committed rows only, see the module's docstring)."""
        await self._writes.begin()
        return False

    async def commit(self) -> None:
        """COMMIT, and release the connection."""
        await self._writes.end(True)

    async def rollback(self) -> None:
        """ROLLBACK, and release the connection."""
        if self._writes.open:
            await self._writes.end(False)

    def invalidate(self) -> None:
        """Nothing to do: begin never finds caches stale."""

    def retryable(self, exc: BaseException) -> bool:
        """A deadlock, a serialization failure, a message another process learned at the same moment,
        or a token another process deleted: the transaction runs again."""
        import asyncpg

        from bot.core.postgres.vocabulary import VocabularyChanged

        return isinstance(
            exc,
            asyncpg.DeadlockDetectedError
            | asyncpg.SerializationError
            | asyncpg.UniqueViolationError
            | VocabularyChanged,
        )

    def scrubbing(self) -> AbstractAsyncContextManager[None]:
        """Nothing: PostgreSQL has no secure_delete (deleted tuples stay until VACUUM reuses their
        space); the database's content is exact without it."""
        return contextlib.nullcontext()


class ReaderSql:
    """Reads outside the write transaction, and single statements: SQLite's reader (and writer) connection,
    or PostgreSQL's pool."""

    def __init__(self, statements: Mapping[str, str], db: Connections | None, pg: PgDatabase | None) -> None:
        self.statements = statements
        self._db = db
        self._pg = pg

    async def fetchone(self, sql: str, args: Sequence[object] = ()) -> Row | None:
        """The first row a statement returns, or None."""
        if self._pg is not None:
            record = await self._pg.pool.fetchrow(sql, *args)
            return None if record is None else tuple(record)
        assert self._db is not None
        async with self._db.r.execute(sql, args) as cur:
            found: Row | None = await cur.fetchone()
        return found

    async def fetchall(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        """Every row a statement returns."""
        if self._pg is not None:
            return [tuple(record) for record in await self._pg.pool.fetch(sql, *args)]
        assert self._db is not None
        return list(await self._db.r.execute_fetchall(sql, args))

    async def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        """Run one statement in a transaction of its own (SQLite: on the writer; the caller holds the write lock)."""
        if self._pg is not None:
            await self._pg.pool.execute(sql, *args)
            return
        assert self._db is not None
        async with self._db.w.execute(sql, args):  # closed at once (see sqlconn.SqliteSql.execute)
            pass


if TYPE_CHECKING:
    _sqlite: type[WriteTx] = SqliteTx  # mypy checks both against the seam
    _pg: type[WriteTx] = PgTx
