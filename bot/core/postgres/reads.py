"""The walker's and the report's reads on PostgreSQL (bot.core.reads): asyncpg on an event loop of its own.

The walker is synchronous code on a thread or in a process of its own, never inside a running
event loop; so each read runs its coroutine to completion on a private loop (run_until_complete),
on one connection opened on first use. asyncpg rather than a second driver: the project's PG
driver already, with the same types (bytea as bytes, bigint[] from a list) as the rest of the
PostgreSQL store, and the loop costs tens of microseconds a read beside a round trip to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Hashable, Iterator, Sequence
from typing import Any, TypeVar

import asyncpg

from bot.core.postgres.schema import PQ

T = TypeVar("T")

SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


class PgReads:
    """Named read-only statements (bot/core/postgres/queries.sql) on one asyncpg connection; one thread at a time."""

    combined = True  # each statement is a round trip (see Reads.combined)

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: asyncpg.Connection[Any] | None = None
        self._depth = 0  # snapshots open (only the outermost begins and ends a transaction)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("PostgreSQL reads are synchronous: run them on a thread without an event loop")
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def _connection(self) -> asyncpg.Connection[Any]:
        if self._conn is None or self._conn.is_closed():
            self._conn = self._run(asyncpg.connect(self._dsn))
            self._depth = 0
        return self._conn

    def rows(self, name: str, *params: Any) -> list[Any]:
        """The rows of a named statement, as tuples."""
        conn = self._connection()
        return [tuple(r) for r in self._run(conn.fetch(PQ[name], *params))]

    def ids(self, values: Sequence[int]) -> list[int]:
        """A list, as bigint[] (Python ints: numpy's are not taken)."""
        return [int(v) for v in values]

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One REPEATABLE READ transaction: the reads inside see the database as of its first read."""
        conn = self._connection()
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._run(conn.execute(SNAPSHOT))
        self._depth = 1
        try:
            yield
        finally:
            self._depth = 0
            if not conn.is_closed():
                self._run(conn.execute("COMMIT"))

    def commits(self, chain_id: int) -> tuple[Hashable, int | None]:
        """(the chain's learning counters, its removals), in one statement: one row by primary key.

        PostgreSQL has no data_version. What it stands for here is per chain: the writer changes a
        chain's counts only in a transaction that also changes its messages_seen and tokens_seen
        (learning) or bumps its removals (an unlearn, forget or reset), both columns of the chain's
        row. The removals are read at every call, so a removal committed by any process is seen by
        the next call, exactly as on SQLite; a change of the counters makes narrow cached states be
        read again. (A merge of the delta into blocks changes no count, and no cache.) Unlike the
        server's transaction snapshot, this stays put while other chains and other databases of the
        server are written to.
        """
        rows = self.rows("chain_commits", chain_id)
        if not rows:
            return None, -1  # no such chain (as on SQLite)
        removals, messages, tokens = rows[0]
        return (int(messages), int(tokens)), int(removals)

    def close(self) -> None:
        """Close the connection and the loop."""
        conn, loop, self._conn, self._loop = self._conn, self._loop, None, None
        if loop is None:
            return
        try:
            if conn is not None and not conn.is_closed():
                loop.run_until_complete(conn.close())
        finally:
            loop.close()
