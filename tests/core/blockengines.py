"""The block property tests' engines: BlockWriter over SQLite or PostgreSQL, and each engine's reads.

A test gets a BlockEngine (the fixture block_engine, tests/core/conftest.py) and, per hypothesis
example, opens a session on an empty chain: SQLite in a new file (the store's Connections, as
CountWriter passes them), PostgreSQL in the test's database with its blocks deleted (the engine's
write transaction, bot.core.postgres.transactions, through the asyncpg seam).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Protocol

import aiosqlite
import pytest

from bot.core import blocks, chainrows, schema, windowrows
from bot.core.blocks import Entries, Kind
from bot.core.blockwriter import BlockWriter
from bot.core.connections import Connections
from bot.core.engines import PostgresUrl
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.transactions import PgWrites
from bot.core.sqlconn import AsyncpgSql
from tests.core import pg_blockrows as blockrows

ENGINES = ["sqlite", "postgresql"]
BlockRow = tuple[bytes, int, bytes]  # first, entries, data


class Session(Protocol):
    """One example's database: block writers, write transactions, and the reads the properties check."""

    def writer(self, kind: Kind = blocks.TRANSITIONS) -> BlockWriter: ...

    def transaction(self) -> AbstractAsyncContextManager[None]: ...

    async def every(self, chain_id: int, order: int) -> Entries: ...

    async def backward(self, chain_id: int, order: int, next_id: int) -> Entries: ...

    async def windows(self, chain_id: int) -> Entries: ...

    async def block_rows(self, direction: int, kind: Kind = blocks.TRANSITIONS) -> list[BlockRow]: ...


class SqliteSession:
    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self.conn = conn
        self.db = Connections(writer=conn)

    def writer(self, kind: Kind = blocks.TRANSITIONS) -> BlockWriter:
        return BlockWriter(self.db, kind)  # the store's connections, as CountWriter hands them over

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")

    async def every(self, chain_id: int, order: int) -> Entries:
        with sqlite3.connect(self.path) as conn:  # the walker's kind of connection
            return chainrows.every(conn, chain_id, order)

    async def backward(self, chain_id: int, order: int, next_id: int) -> Entries:
        with sqlite3.connect(self.path) as conn:
            return chainrows.backward(conn, chain_id, order, next_id, None)

    async def windows(self, chain_id: int) -> Entries:
        with sqlite3.connect(self.path) as conn:
            return windowrows.every(conn, chain_id)

    async def block_rows(self, direction: int, kind: Kind = blocks.TRANSITIONS) -> list[BlockRow]:
        table = "window_blocks" if kind.versioned else "transition_blocks"
        with sqlite3.connect(self.path) as conn:
            rows = conn.execute(
                f"SELECT first, entries, data FROM {table} WHERE direction = ? ORDER BY first", (direction,)
            ).fetchall()
        return [(bytes(f), int(n), bytes(d)) for f, n, d in rows]


class PostgresSession:
    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self.writes = PgWrites(db)

    def writer(self, kind: Kind = blocks.TRANSITIONS) -> BlockWriter:
        return BlockWriter(AsyncpgSql(lambda: self.writes.w), kind)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.writes.transaction():
            yield

    async def every(self, chain_id: int, order: int) -> Entries:
        return await blockrows.every(self.db.pool, chain_id, order)

    async def backward(self, chain_id: int, order: int, next_id: int) -> Entries:
        return await blockrows.backward(self.db.pool, chain_id, order, next_id, None)

    async def windows(self, chain_id: int) -> Entries:
        return await blockrows.windows(self.db.pool, chain_id)

    async def block_rows(self, direction: int, kind: Kind = blocks.TRANSITIONS) -> list[BlockRow]:
        table = "window_blocks" if kind.versioned else "transition_blocks"
        rows = await self.db.pool.fetch(
            f"SELECT first, entries, data FROM {table} WHERE direction = $1 ORDER BY first", direction
        )
        return [(bytes(f), int(n), bytes(d)) for f, n, d in rows]


class BlockEngine:
    """An engine the block properties run on; each session starts with no blocks at all."""

    def __init__(self, name: str, tmp: pytest.TempPathFactory, url: str = "") -> None:
        self.name = name
        self._tmp = tmp
        self.url = url

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        if self.name == "sqlite":
            path = self._tmp.mktemp("blocks") / "b.sqlite3"
            conn = await aiosqlite.connect(path, isolation_level=None)
            try:
                await schema.migrate(conn, path)
                yield SqliteSession(path, conn)
            finally:
                await conn.close()
            return
        db = await PgDatabase.open(PostgresUrl(self.url), max_size=2)
        try:
            await db.pool.execute("DELETE FROM transition_blocks; DELETE FROM window_blocks")
            yield PostgresSession(db)
        finally:
            await db.close()
