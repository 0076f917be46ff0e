"""The walker's and the report's reads as one small synchronous seam, over SQLite or PostgreSQL.

A Reads runs named read-only statements (bot/core/queries.sql on SQLite, the same names in
bot/core/postgres/queries.sql on PostgreSQL) and gives plain tuples. SqliteReads is today's
sqlite3 connection with nothing in between but the statement's lookup; PgReads
(bot.core.postgres.reads) runs asyncpg on an event loop of its own. Which one a caller gets
depends on where the store lives: a SQLite file's Path, or a PostgreSQL URL string.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Hashable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from bot.core import engines, schema
from bot.core.engines import DatabaseUrl, PostgresUrl, SqliteUrl
from bot.core.sql import Q


class Reads(Protocol):
    """Named read-only statements, on one connection; one thread at a time."""

    combined: bool  # True: each statement is a round trip: the guard reads a window index whole (windowrows)

    def rows(self, name: str, *params: Any) -> list[Any]:
        """The rows of a named statement, as tuples."""
        ...

    def ids(self, values: Sequence[int]) -> Any:
        """A list of integers as a statement's one parameter (JSON on SQLite, bigint[] on PostgreSQL)."""
        ...

    def snapshot(self) -> AbstractContextManager[None]:
        """The reads inside see one committed state of the database (nests: the outer one counts)."""
        ...

    def commits(self, chain_id: int) -> tuple[Hashable, int | None]:
        """What the walker checks its caches against before a call (see Walker.sync): (a value that
        changes when another connection commits, the chain's removals) or, when the first is the
        chain's own and the removals are read with it, (that value, the removals)."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class SqliteReads:
    """Reads on a sqlite3 connection: the statements of bot/core/queries.sql, run directly."""

    __slots__ = ("conn",)
    combined = False  # a statement costs no round trip: the guard looks windows up one key at a time

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, name: str, *params: Any) -> list[Any]:
        """The rows of a named statement."""
        return self.conn.execute(Q[name], params).fetchall()

    def ids(self, values: Sequence[int]) -> str:
        """A JSON array, as json_each reads it."""
        return json.dumps(list(values))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction (none when the connection is in one already: the writer's, or a snapshot)."""
        conn = self.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    def commits(self, chain_id: int) -> tuple[Hashable, int | None]:
        """PRAGMA data_version: it changes when another connection committed (the removals are read then)."""
        (data_version,) = self.conn.execute("PRAGMA data_version").fetchone()
        return data_version, None

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def of(db: Reads | sqlite3.Connection) -> Reads:
    """A Reads for a plain sqlite3 connection (the attack's, the tests'), or the Reads given."""
    return SqliteReads(db) if isinstance(db, sqlite3.Connection) else db


def database(where: Path | str) -> DatabaseUrl:
    """Where a store lives: a Path is a SQLite file; a string is parsed (a path, sqlite:///..., postgresql://...)."""
    return SqliteUrl(where) if isinstance(where, Path) else engines.parse(where)


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """A read-only sqlite3 connection in autocommit mode that waits for the writer's locks."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {schema.BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn


def connect(where: Path | str) -> Reads:
    """Reads on a new connection to where the store lives (made in the thread that uses it)."""
    url = database(where)
    if isinstance(url, PostgresUrl):
        from bot.core.postgres.reads import PgReads  # asyncpg only when on PostgreSQL

        return PgReads(url.dsn)
    return SqliteReads(connect_sqlite(url.path))
