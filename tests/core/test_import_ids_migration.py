"""Migration 0006: text-import ids lose the hash of their line, and a re-import learns nothing twice."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.brain import Brain
from bot.core.messagekeys import message_key
from bot.core.models import Message
from tests.core.dump import downgrade

LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"]


def old_id(name: str, number: int, text: str) -> str:
    """The id an import gave a line before 0006: file name, line number and an unsalted hash."""
    return f"{name}:{number}:{hashlib.blake2b(text.encode(), digest_size=6).hexdigest()}"


# Every (platform, message id) build_old_database learns.
LEARNED = [
    *(("local", old_id("corpus.txt", number, text)) for number, text in enumerate(LINES, start=1)),
    ("local", "123456789"),
    ("discord", old_id("corpus.txt", 1, "x")),
    ("local", "other.txt:1"),
    ("local", old_id("other.txt", 1, "b")),
]


async def build_old_database(db: Path) -> None:
    """A database learned with the old id shape."""
    brain = await Brain.open(db, flush_interval=0.05)
    for number, text in enumerate(LINES, start=1):
        old = Message("local", "local", "c", "import", old_id("corpus.txt", number, text), text)
        await brain.learn(old, require_consent=False)
    # Others that must not change: a Discord id, a console id, and an old id whose new form exists.
    await brain.learn(
        Message("local", "local", "c", "100", "123456789", "from an export"), require_consent=False
    )
    await brain.learn(
        Message("discord", "g", "c", "1", old_id("corpus.txt", 1, "x"), "x y"), require_consent=False
    )
    await brain.learn(Message("local", "local", "d", "import", "other.txt:1", "kept"), require_consent=False)
    await brain.learn(
        Message("local", "local", "d", "import", old_id("other.txt", 1, "b"), "b c"), require_consent=False
    )
    await brain.close()


def test_old_import_ids_are_rewritten_and_a_reimport_learns_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    asyncio.run(build_old_database(db))
    downgrade(db, 5, LEARNED)  # as a database from before 0006

    (tmp_path / "corpus.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
    monkeypatch.setenv("MARKOV_WALKER", "thread")
    assert main(["import", str(tmp_path / "corpus.txt"), "--chain", "c", "--db", str(db)]) == 0
    assert "learned 0, already learned 3" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        keys = sorted(int(k) for (k,) in conn.execute("SELECT id FROM messages"))
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 6
        assert conn.execute("SELECT messages_seen FROM chains WHERE channel = 'c'").fetchone() == (4,)
    assert keys == sorted(
        message_key(p, m)
        for p, m in [
            ("discord", old_id("corpus.txt", 1, "x")),
            ("local", "123456789"),
            ("local", "corpus.txt:1"),
            ("local", "corpus.txt:2"),
            ("local", "corpus.txt:3"),
            ("local", "other.txt:1"),
            ("local", old_id("other.txt", 1, "b")),
        ]
    )
