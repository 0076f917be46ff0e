"""A small typed SQL seam: named statements run on SQLite (aiosqlite) or PostgreSQL (asyncpg) alike.

A part written over ``SqlConn`` (bot.core.blockwriter) names its statements; each engine's adapter
holds that engine's statements under the same names (SQLite's bot/core/queries.sql with ``?``,
PostgreSQL's bot/core/postgres/queries.sql with ``$1``...). A list of ids is one parameter: the
SQLite adapter passes it as a JSON array (read with json_each), asyncpg as an array
(``= ANY($1::bigint[])``). The adapters wrap calls, never rows: executemany hands its rows
iterator to the driver untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import aiosqlite

from bot.core.connections import Connections
from bot.core.sql import Q

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    PgConnection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

Row = Sequence[Any]


class SqlConn(Protocol):
    """One engine's connection, as the parts written over the seam see it."""

    @property
    def statements(self) -> Mapping[str, str]:
        """This engine's named statements."""
        ...

    @property
    def shared(self) -> bool:
        """Whether other processes may write the database at once (then writers lock what they rewrite)."""
        ...

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the connection."""
        ...

    async def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        """Run a statement."""

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run a statement once for each row of parameters."""

    async def fetchall(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        """Every row a statement returns."""
        ...

    async def fetchone(self, sql: str, args: Sequence[object] = ()) -> Row | None:
        """The first row a statement returns, or None."""
        ...


def _sqlite_args(args: Sequence[object]) -> Sequence[object]:
    """Parameters as SQLite's statements take them: a list as one JSON array."""
    if any(isinstance(a, list) for a in args):
        return tuple(json.dumps(a) if isinstance(a, list) else a for a in args)
    return args


class SqliteSql:
    """The seam over the store's SQLite writer connection (read at each call: the store opens it later)."""

    statements: Mapping[str, str] = Q
    shared = False  # one writer at a time: SQLite's write lock on the file

    def __init__(self, db: Connections) -> None:
        self._db = db

    @property
    def in_transaction(self) -> bool:
        """Whether the writer connection has a transaction open."""
        return self._db.w.in_transaction

    async def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        """Run a statement to its end (a SELECT left open would keep its statement active on the
        writer connection, and a later PRAGMA there fails: "database table is locked")."""
        await self._db.w.execute_fetchall(sql, _sqlite_args(args))

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run a statement once for each row of parameters."""
        await self._db.w.executemany(sql, rows)

    async def fetchall(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        """Every row a statement returns (read in the connection's thread: one round trip to it)."""
        rows: Iterable[aiosqlite.Row] = await self._db.w.execute_fetchall(sql, _sqlite_args(args))
        return list(rows)

    async def fetchone(self, sql: str, args: Sequence[object] = ()) -> Row | None:
        """The first row a statement returns, or None (the seam's statements read one row at most)."""
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None


class AsyncpgSql:
    """The seam over an asyncpg connection: a given one, or whichever a callable hands out (the open
    write transaction's, bot.core.postgres.transactions.PgWrites.w)."""

    shared = True  # several bot processes and imports write one database

    def __init__(self, conn: PgConnection | Callable[[], PgConnection]) -> None:
        from bot.core.postgres.schema import PQ  # the PostgreSQL engine loads only when used

        self.statements: Mapping[str, str] = PQ
        self._conn: Callable[[], PgConnection] = conn if callable(conn) else (lambda: conn)

    @property
    def in_transaction(self) -> bool:
        """Whether the connection has a transaction open."""
        return self._conn().is_in_transaction()

    async def execute(self, sql: str, args: Sequence[object] = ()) -> None:
        """Run a statement."""
        await self._conn().execute(sql, *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run a statement once for each row of parameters (sent in one batch)."""
        await self._conn().executemany(sql, rows)

    async def fetchall(self, sql: str, args: Sequence[object] = ()) -> list[Row]:
        """Every row a statement returns."""
        return list(await self._conn().fetch(sql, *args))

    async def fetchone(self, sql: str, args: Sequence[object] = ()) -> Row | None:
        """The first row a statement returns, or None."""
        row: Row | None = await self._conn().fetchrow(sql, *args)
        return row


def of(db: Connections | SqlConn) -> SqlConn:
    """The seam for a store's SQLite connections (wrapped), or a seam given as it is."""
    return SqliteSql(db) if isinstance(db, Connections) else db


if TYPE_CHECKING:
    _sqlite: type[SqlConn] = SqliteSql  # mypy checks both adapters against the seam
    _asyncpg: type[SqlConn] = AsyncpgSql
