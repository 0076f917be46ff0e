"""Faults: a full disk pauses learning without losing or corrupting anything; bad paths fail clearly."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.brain import Brain
from bot.core.models import ChainKey, Message
from bot.core.store import SchemaTooNew, StoreError


async def test_a_full_disk_pauses_learning_and_loses_nothing(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    brain = await Brain.open(db_path, flush_interval=0.05, batch_size=100)
    try:
        await brain.opt_in("t", "g", "u")
        await brain.set_channel("t", "g", "c", True)
        async with brain.store.w.execute("PRAGMA page_count") as cur:
            row = await cur.fetchone()
        assert row is not None
        # The database may not grow any more: SQLite answers "database or disk is full".
        await brain.store.w.execute(f"PRAGMA max_page_count = {row[0]}")
        for i in range(300):
            await brain.learn(Message("t", "g", "c", "u", str(i), f"message {i} with some words {i * 7}"))
        with pytest.raises(StoreError, match="full"):
            await brain.flush()
        await asyncio.sleep(0.3)  # the flusher keeps failing, backs off, and keeps the queue
        assert brain.store.pending == 300
        assert "learning paused" in caplog.text
        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)

        await brain.store.w.execute("PRAGMA max_page_count = 1073741823")  # space again
        await brain.flush()
        assert brain.store.pending == 0
        assert (await brain.counts(ChainKey("t", "g", "c")))["messages_seen"] == 300
    finally:
        await brain.close()


async def test_a_newer_schema_is_refused_by_the_brain(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 42")
    with pytest.raises(SchemaTooNew, match="schema version 42"):
        await Brain.open(db_path)


def test_a_database_path_that_cannot_exist_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["--db", str(blocker / "markov.sqlite3"), "stats", "--chain", "c"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: cannot use the database") and "\n" not in err


def test_a_database_that_is_not_sqlite_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "junk.sqlite3"
    db.write_bytes(b"\x00junk" * 1000)
    assert main(["--db", str(db), "generate", "--chain", "c"]) == 1
    assert "cannot use the database" in capsys.readouterr().err
