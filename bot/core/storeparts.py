"""The store's parts for each engine: SQLite's over the store's two connections, PostgreSQL's over a pool."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from bot.core.connections import Connections
from bot.core.contracts import GuildStateStore, VocabularyStore
from bot.core.engines import PostgresUrl
from bot.core.guildstate import GuildState
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.guildstate import GuildState as PgGuildState
from bot.core.registry import Registry
from bot.core.sql import Q
from bot.core.vocabulary import Vocabulary
from bot.core.writetx import PgTx, ReaderSql, SqliteTx, WriteTx

if TYPE_CHECKING:
    from bot.core.writer import AnyRegistry

SQLITE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError, sqlite3.DatabaseError)


def postgres_errors() -> tuple[type[BaseException], ...]:
    """What a failed PostgreSQL write raises (the learning queue says so as a StoreError)."""
    import asyncpg

    return (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


Parts = tuple[PgDatabase | None, WriteTx, GuildStateStore, "AnyRegistry", VocabularyStore, ReaderSql]


def sqlite_parts(db: Connections, cache_size: int) -> Parts:
    """SQLite's parts: everything on the store's writer and reader connections."""
    return (
        None,
        SqliteTx(db),
        GuildState(db),
        Registry(db),
        Vocabulary(db, cache_size),
        ReaderSql(Q, db, None),
    )


def postgres_parts(url: PostgresUrl, cache_size: int) -> Parts:
    """PostgreSQL's parts: on the pool, the writer's on a pooled connection held per transaction."""
    from bot.core.postgres.registry import Registry as PgRegistry
    from bot.core.postgres.schema import PQ
    from bot.core.postgres.transactions import PgWrites
    from bot.core.postgres.vocabulary import Vocabulary as PgVocabulary

    pg = PgDatabase(url)
    writes = PgWrites(pg)
    return (
        pg,
        PgTx(writes),
        PgGuildState(pg),
        PgRegistry(pg),
        PgVocabulary(pg, writes, cache_size),
        ReaderSql(PQ, None, pg),
    )
