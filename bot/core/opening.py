"""Opening and closing the store's database, per engine: SQLite's file and two connections, PostgreSQL's pool.

SQLite: the file is checked before anything writes to it (a file the store refuses is left byte
for byte), then the writer connection is tuned and migrates the schema, and a read-only reader
connection opens beside it. PostgreSQL: the pool migrates the database as it starts (see
bot.core.postgres), and guild state listens for other processes' changes. Either way the
fingerprint key is loaded last (bot.core.keymeta); the Store seals with it, starts the walker and
the flusher, and closes what was opened here when anything fails.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from pathlib import Path

import aiosqlite

from bot.core import background, schema
from bot.core.connections import SECURE_DELETE, Connections, pragma
from bot.core.contracts import GuildStateStore
from bot.core.keymeta import load_key, load_shared_key
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.guildstate import GuildState as PgGuildState
from bot.core.sql import Q, tune_sqlite
from bot.core.writetx import ReaderSql

WRITER_CACHE_KIB = 65_536  # the writer's SQLite page cache (the default 2 MB makes upserts seek)
# WAL pages from which a commit checkpoints (SQLite's default 1,000): the delta's hot pages, dirtied
# by every commit, reach the main file once per 64 MB of log, not once per 4 MB (commits took 14.5 s
# of a 200,000-message live ingest, 8.3 s with this).
WAL_CHECKPOINT_PAGES = 16_384
WAL_KEPT_BYTES = 4 << 20  # what of the log's file stays on disk once a checkpoint has emptied it


async def check_sqlite(path: Path) -> None:
    """Before anything opens: make the file's folder, and refuse a file that is not markovbot's."""
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    # A path SQLite cannot open fails here, before aiosqlite starts a worker thread: aiosqlite
    # 0.22 leaves a failed connect's stop future unawaited, and its thread then reports to a
    # closed event loop (omnilib/aiosqlite#389).
    tune_sqlite()
    # Checked before anything writes: a file the store refuses is left byte for byte.
    await asyncio.to_thread(schema.check_file, path)
    await asyncio.to_thread(schema.probe, path)


async def open_sqlite(
    db: Connections, path: Path, given_key: bytes | None, *, in_background: bool = False
) -> bytes:
    """Open the writer connection (migrating the file) and the reader beside it; the fingerprint key.

    in_background: the writer's thread runs below the event loop (bot.core.background).
    """
    db.writer = await aiosqlite.connect(path, isolation_level=None, factory=background.factory(in_background))
    await db.w.execute(f"PRAGMA busy_timeout = {schema.BUSY_TIMEOUT_MS}")
    await schema.enable_wal(db.w)
    await db.w.execute("PRAGMA synchronous = NORMAL")
    await db.w.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    await db.w.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    await db.w.execute(f"PRAGMA journal_size_limit = {WAL_KEPT_BYTES}")
    await pragma(db.w, f"secure_delete = {SECURE_DELETE}")
    await schema.migrate(db.w, path)
    await db.w.execute(Q["create_hub_candidates"])
    db.reader = await aiosqlite.connect(path, isolation_level=None)
    await db.r.execute(f"PRAGMA busy_timeout = {schema.BUSY_TIMEOUT_MS}")
    await db.r.execute("PRAGMA query_only = ON")
    key = await load_key(db.w, path, given_key)
    await ensure_math(db.r)
    return key


def write_locked(path: Path) -> bool:
    """True when another connection holds the file's write lock now (looked at without waiting); False
    also when the look itself fails otherwise (the write then tries, and says what failed)."""
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0, isolation_level=None
        )
    except sqlite3.Error:
        return False
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.Error as exc:
        return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    finally:
        conn.close()


async def ensure_math(conn: aiosqlite.Connection) -> None:
    """Provide log2 where SQLite was built without its math functions."""
    try:
        await conn.execute("SELECT log2(2)")
    except sqlite3.OperationalError:
        await conn.create_function("log2", 1, math.log2, deterministic=True)


async def open_postgres(
    pg: PgDatabase, guilds: GuildStateStore, reader: ReaderSql, key_path: Path, given_key: bytes | None
) -> bytes:
    """Listen for guild-state changes (the pool started, the database migrated); the fingerprint key."""
    await pg_guild_state(guilds).start()
    return await load_shared_key(reader, key_path, given_key, pg.url.redacted)


def pg_guild_state(guilds: GuildStateStore | None) -> PgGuildState:
    """PostgreSQL's guild-state part, as its own type (it listens, and stops listening on close)."""
    assert isinstance(guilds, PgGuildState)
    return guilds


async def close(db: Connections, pg: PgDatabase | None = None, guilds: GuildStateStore | None = None) -> None:
    """Close SQLite's connections, or PostgreSQL's guild-state listener and pool (whatever is open)."""
    for conn in (db.reader, db.writer):
        if conn is not None:
            await conn.close()
    db.reader = db.writer = None
    if pg is not None:
        await pg_guild_state(guilds).close()
        await pg.close()
