"""Each engine's open and close (bot.core.opening): SQLite's file and connections, PostgreSQL's pool."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from bot.core import engines, opening
from bot.core.connections import Connections
from bot.core.schema import SCHEMA_VERSION, NotMarkovbotDatabase
from bot.core.storeparts import postgres_parts

KEY = bytes(range(32))


async def test_a_file_not_markovbots_is_refused_before_anything_opens(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"\x00junk" * 1000)
    before = path.read_bytes()
    with pytest.raises(NotMarkovbotDatabase):
        await opening.check_sqlite(path)
    assert path.read_bytes() == before


async def test_sqlite_opens_a_migrated_writer_and_a_read_only_reader_then_closes_both(tmp_path: Path) -> None:
    path = tmp_path / "new" / "markov.sqlite3"
    await opening.check_sqlite(path)  # makes the folder
    db = Connections()
    try:
        assert await opening.open_sqlite(db, path, KEY) == KEY
        async with db.w.execute("PRAGMA journal_mode") as cur:
            assert await cur.fetchone() == ("wal",)
        async with db.w.execute("PRAGMA user_version") as cur:
            assert await cur.fetchone() == (SCHEMA_VERSION,)
        async with db.r.execute("SELECT log2(8)") as cur:
            assert await cur.fetchone() == (3.0,)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.r.execute("DELETE FROM meta")
    finally:
        await opening.close(db)
    assert db.writer is None and db.reader is None


async def test_postgresql_starts_listening_and_loads_the_key_then_closes_its_pool(
    pg_url: str, tmp_path: Path
) -> None:
    url = engines.parse(pg_url)
    assert isinstance(url, engines.PostgresUrl)
    pg, _, guilds, _, _, reader = postgres_parts(url, 100)
    assert pg is not None
    await pg.start()
    db = Connections()
    try:
        assert await opening.open_postgres(pg, guilds, reader, tmp_path / "pg", KEY) == KEY
        assert await guilds.set_consent("test", "g", "alice", True)
        assert await guilds.consenting("test", "g") == {"alice"}
    finally:
        await opening.close(db, pg, guilds)
    assert not pg.is_open


def test_a_look_at_the_write_lock_sees_another_connections_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "markov.sqlite3"
    assert opening.write_locked(path) is False  # no file: the write that follows says so
    assert not path.exists()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("PRAGMA journal_mode = WAL")
        assert opening.write_locked(path) is False
        holder.execute("BEGIN IMMEDIATE")
        assert opening.write_locked(path) is True
        holder.execute("ROLLBACK")
        assert opening.write_locked(path) is False
