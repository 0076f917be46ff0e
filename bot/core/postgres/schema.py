"""PostgreSQL's migrations: numbered files in bot/core/migrations/postgresql, applied once, in order.

The version is kept in the database (markov_migrations, one row per migration applied). Every
process that opens the store runs ``migrate``: the first takes a transaction-level advisory
lock and applies what is missing in that same transaction; the others wait on the lock and then
find nothing to do. A failed migration rolls back whole (PostgreSQL's DDL is transactional).
"""

from __future__ import annotations

import re
from importlib import resources

import asyncpg

from bot.core.schema import SchemaTooNew, StoreError
from bot.core.sql import load_queries

PQ = load_queries("bot.core.postgres")

# pg_advisory_xact_lock's key for "migrating markovbot's schema" (the bytes of "markov" as an integer).
MIGRATION_LOCK = int.from_bytes(b"markov", "big")


class NotMarkovbotDatabase(StoreError):
    """The database already holds another program's tables; it is left as it was."""


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every PostgreSQL migration, in order."""
    folder = resources.files("bot.core").joinpath("migrations", "postgresql")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_.+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found)


SCHEMA_VERSION = migrations()[-1][0]


async def version(conn: asyncpg.Connection) -> int:
    """The database's schema version (0: not a markovbot database yet)."""
    if not await conn.fetchval(PQ["has_version_table"]):
        return 0
    return int(await conn.fetchval(PQ["schema_version"]))


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply the migrations the database lacks, under the migration lock; returns the version it is at."""
    async with conn.transaction(isolation="read_committed"):  # each statement sees what the lock waited for
        await conn.execute(PQ["lock_migrations"], MIGRATION_LOCK)
        if not await conn.fetchval(PQ["has_version_table"]):
            tables = await conn.fetchval(PQ["count_tables"])
            if tables:
                raise NotMarkovbotDatabase(
                    f"the PostgreSQL database holds {tables} tables but no markov_migrations: it is not "
                    "a markovbot database (left untouched); point MARKOV_DATABASE_URL at another database."
                )
            await conn.execute(PQ["create_version_table"])
        current = int(await conn.fetchval(PQ["schema_version"]))
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the PostgreSQL database is at schema version {current}, newer than this markovbot's "
                f"{SCHEMA_VERSION}: upgrade markovbot, or point MARKOV_DATABASE_URL at another database."
            )
        for number, name, sql in migrations():
            if number > current:
                await conn.execute(sql)  # no arguments: the simple protocol, several statements
                await conn.execute(PQ["record_migration"], number, name)
                current = number
    return current
