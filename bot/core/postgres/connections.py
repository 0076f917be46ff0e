"""One PostgreSQL database: a pool of connections for the store's parts, opened after migrating it."""

from __future__ import annotations

import asyncpg

from bot.core.engines import PostgresUrl
from bot.core.postgres import schema
from bot.core.schema import StoreError

POOL_MIN = 1
POOL_MAX = 4  # a bot process's concurrent statements (the event loop runs one coroutine at a time)


class PgDatabase:
    """A migrated database and its pool; parts that listen for notifications open a connection of their own."""

    def __init__(self, url: PostgresUrl, pool: asyncpg.Pool | None = None) -> None:
        self.url = url
        self._pool = pool

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool (once open)."""
        if self._pool is None:
            raise RuntimeError("the PostgreSQL database is not open")
        return self._pool

    @classmethod
    async def open(
        cls, url: PostgresUrl, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX
    ) -> PgDatabase:
        """Migrate the database (safe beside other processes doing the same) and open the pool."""
        db = cls(url)
        await db.start(min_size=min_size, max_size=max_size)
        return db

    async def start(self, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX) -> None:
        """Migrate the database and open this instance's pool."""
        url = self.url
        try:
            conn = await asyncpg.connect(url.dsn)
            try:
                await schema.migrate(conn)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(url.dsn, min_size=min_size, max_size=max_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot use the PostgreSQL database {url.redacted}: {one_line(exc)}") from exc

    @property
    def is_open(self) -> bool:
        """Whether the pool is open."""
        return self._pool is not None

    async def connect(self) -> asyncpg.Connection:
        """A connection outside the pool (a listener keeps its own for as long as it listens)."""
        return await asyncpg.connect(self.url.dsn)

    async def close(self) -> None:
        """Close the pool (waits for connections in use to be released)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (the server's can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
