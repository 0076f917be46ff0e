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

    def __init__(self, url: PostgresUrl, pool: asyncpg.Pool) -> None:
        self.url = url
        self.pool = pool

    @classmethod
    async def open(
        cls, url: PostgresUrl, *, min_size: int = POOL_MIN, max_size: int = POOL_MAX
    ) -> PgDatabase:
        """Migrate the database (safe beside other processes doing the same) and open the pool."""
        try:
            conn = await asyncpg.connect(url.dsn)
            try:
                await schema.migrate(conn)
            finally:
                await conn.close()
            pool = await asyncpg.create_pool(url.dsn, min_size=min_size, max_size=max_size)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot use the PostgreSQL database {url.redacted}: {one_line(exc)}") from exc
        return cls(url, pool)

    async def connect(self) -> asyncpg.Connection:
        """A connection outside the pool (a listener keeps its own for as long as it listens)."""
        return await asyncpg.connect(self.url.dsn)

    async def close(self) -> None:
        """Close the pool (waits for connections in use to be released)."""
        await self.pool.close()


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (the server's can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
