"""Migration 0013: a chain whose message rows 0011 may have dropped is scanned by every forget; the others are not."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from bot.core.brain import Brain
from bot.core.messagekeys import message_key
from bot.core.models import Message
from tests.core import writer_corpus
from tests.core.dump import counts_without_rows, downgrade, logical_dump, transition_rows

KEY = b"0123456789abcdef"
P, G = "test", "guild"
ALICE = [
    Message(P, G, "c1", "alice", "1", "the cat sat"),
    Message(P, G, "c2", "alice", "2", "the cat ran far"),
]
BOB = [Message(P, G, "c1", "bob", "3", "the dog sat"), Message(P, G, "c2", "bob", "4", "a dog ran")]


async def learn(path: Path, messages: list[Message]) -> None:
    brain = await Brain.open(path, flush_interval=0.05, key=KEY)
    try:
        await writer_corpus.learn(brain, messages)
    finally:
        await brain.close()


def incomplete(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT channel, rows_incomplete FROM chains"))


async def test_a_chain_that_lost_a_message_row_in_0011_is_still_forgotten_exactly(tmp_path: Path) -> None:
    db, never = tmp_path / "old.sqlite3", tmp_path / "never.sqlite3"
    await learn(db, ALICE + BOB)
    downgrade(db, 12, key=KEY)
    # As 0011 did when another message had the key of alice's in c2:
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM messages WHERE id = ?", (message_key(P, "2"),))
    c2, alice = ("test", "guild", "c2"), ("test", "guild", "alice")
    assert counts_without_rows(logical_dump(db, KEY)) == [
        f"{c2}: 2 messages seen, 1 rows",
        f"{c2}: counts of {alice} and no message row",
    ]
    brain = await Brain.open(db, flush_interval=0.05, key=KEY)
    try:
        await brain.forget(P, G, "alice")
    finally:
        await brain.close()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        authors = {a for (a,) in conn.execute("SELECT id FROM authors")}
        assert {a for _, _, _, a, _ in transition_rows(conn)} <= authors  # no count of alice's is left
    await learn(never, BOB)
    # c2 had no row of alice's left, and still lost her counts and windows.
    for table in ("transitions", "windows", "messages", "authors_with_data"):
        assert logical_dump(db, KEY)[table] == logical_dump(never, KEY)[table], table
    assert incomplete(db) == {"c1": 0, "c2": 1}  # every forget scans c2; c1's rows are whole


async def test_a_file_whose_rows_match_its_counters_marks_no_chain(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    await learn(db, ALICE + BOB)
    downgrade(db, 12, key=KEY)
    brain = await Brain.open(db, flush_interval=0.05, key=KEY)
    await brain.close()
    assert incomplete(db) == {"c1": 0, "c2": 0}
