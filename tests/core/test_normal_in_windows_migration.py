"""Migration 0014 (PostgreSQL 0007): each message's normalised form moves from an index into its chain's windows."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import asyncpg

from bot.core.brain import Brain
from bot.core.models import ChainKey, Message
from bot.core.postgres import schema as pg_schema
from bot.core.walker import Walker
from tests.core import writer_corpus
from tests.core.dump import downgrade, logical_dump, window_rows
from tests.core.pg_dump import pg_logical_dump

KEY = b"0123456789abcdef"
P, G = "test", "guild"
SAID = [
    Message(P, G, "c1", "alice", "1", "Hello there!"),
    Message(P, G, "c1", "bob", "2", "hello there"),
    Message(P, G, "c1", "bob", "3", "the cat sat on the old mat near the door today"),
    Message(P, G, "c2", "alice", "4", "see you tomorrow"),
]
FORMS = "SELECT chain_id, normal, author_id, count(*) FROM messages GROUP BY chain_id, normal, author_id"


async def learn(where: Path | str, messages: list[Message]) -> None:
    brain = await Brain.open(where, flush_interval=0.05, key=KEY, merge_rows=10**9)
    try:
        await writer_corpus.learn(brain, messages)
    finally:
        await brain.close()


async def whole_copy_found(path: Path, channel: str, text: str) -> bool:
    """A walker's copy guard finds text to be a whole learned message of the channel (up to normalisation)."""
    brain = await Brain.open(path, key=KEY)
    try:
        chain = await brain.store.find_chain(ChainKey(P, G, channel))
        assert chain is not None
        walker = Walker(path, KEY, 100)
        try:
            return walker.copies(chain, text.split())[0]
        finally:
            walker.close()
    finally:
        await brain.close()


async def test_a_schema_13_file_gets_each_form_among_its_windows_and_loses_the_index(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    await learn(path, SAID)
    before = logical_dump(path, KEY)
    downgrade(path, 13, key=KEY)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        forms = conn.execute(FORMS).fetchall()
        held = {(c, f, a): k for c, f, a, k in window_rows(conn)}
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_by_normal'").fetchone()
    assert len(forms) == 4 and not any((c, f, a) in held for c, f, a, _ in forms)  # K-runs only, as then
    await learn(path, [])  # opens: migrates
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages_by_normal'").fetchone()
        held = {(c, f, a): k for c, f, a, k in window_rows(conn)}
    assert all(held.get((c, f, a)) == k for c, f, a, k in forms)
    assert logical_dump(path, KEY) == before  # as a file that learned them at schema 14


async def test_the_guard_finds_a_whole_copy_in_another_form_after_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    await learn(path, SAID)
    downgrade(path, 13, key=KEY)
    await learn(path, [])
    assert await whole_copy_found(path, "c1", "HELLO THERE .")
    assert await whole_copy_found(path, "c2", "See you tomorrow")
    assert not await whole_copy_found(path, "c2", "hello there")  # another chain's message
    assert not await whole_copy_found(path, "c1", "hello")


async def test_a_postgresql_database_at_version_6_gets_each_form_among_its_windows(pg_url: str) -> None:
    await learn(pg_url, SAID)
    before = await pg_logical_dump(pg_url, KEY)
    conn = await asyncpg.connect(pg_url)
    try:
        forms = await conn.fetch(FORMS)
        assert len(forms) == 4
        held = {
            tuple(r) for r in await conn.fetch("SELECT chain_id, fingerprint, author_id, count FROM windows")
        }
        assert {tuple(r) for r in forms} <= held  # learned at version 7: in the delta (merges held off)
        # Version 6 as it was: the forms only in the rows, found through their index.
        await conn.execute(
            "DELETE FROM windows AS w USING messages AS m "
            "WHERE w.chain_id = m.chain_id AND w.fingerprint = m.normal AND w.author_id = m.author_id"
        )
        await conn.execute(
            "CREATE INDEX messages_by_normal ON messages (chain_id, normal) WHERE normal IS NOT NULL"
        )
        await conn.execute("DELETE FROM markov_migrations WHERE version = 7")
        assert await pg_schema.migrate(conn) == pg_schema.SCHEMA_VERSION == 7
        assert not await conn.fetchval("SELECT to_regclass('messages_by_normal') IS NOT NULL")
    finally:
        await conn.close()
    assert await pg_logical_dump(pg_url, KEY) == before
