"""Migration 0011: messages keyed by message_key(platform, message_id); an old file keeps deduping its ids."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core import models
from bot.core.brain import Brain
from bot.core.messagekeys import message_key
from bot.core.models import ChainKey, LearnStatus, Message, UnlearnStatus
from bot.core.tokens import tokenize
from bot.importer import import_file
from tests.core.dump import downgrade, logical_dump

KEY = b"0123456789abcdef"
CHAIN = ChainKey("local", "local", "c")
LINES = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ran far"]
LIVE = [
    Message("discord", "g", "c1", "alice", "1001", "alice says the cat sat"),
    Message("discord", "g", "c1", "bob", "1002", "bob says the dog ran"),
    Message("discord", "g", "c1", "alice", "1003", "alice says it again"),
]


async def learn(path: Path, corpus: Path, live: list[Message]) -> None:
    """Import the corpus and learn the live messages (kept for the edit window: recent rows)."""
    brain = await Brain.open(path, flush_interval=0.05, key=KEY)
    try:
        await import_file(brain, corpus, CHAIN, progress=False)
        for m in live:
            await brain.opt_in(m.platform, m.guild, m.author)
            await brain.set_channel(m.platform, m.guild, m.channel, True)
            await brain.learn(m)
        await brain.flush()
    finally:
        await brain.close()


def learned_ids(corpus: Path) -> list[tuple[str, str]]:
    return [("local", f"{corpus.name}:{i}") for i in range(1, len(LINES) + 1)] + [
        (m.platform, m.id) for m in LIVE
    ]


async def test_a_schema_9_file_migrates_exactly_and_keeps_deduping_and_unlearning(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    db = tmp_path / "old.sqlite3"
    await learn(db, corpus, LIVE)
    expected = logical_dump(db, KEY)
    downgrade(db, 9, learned_ids(corpus), KEY)  # recent rows sealed bound to their text id, as then
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (9,)
        assert conn.execute("SELECT count(*) FROM messages WHERE platform = 'local'").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM recent_messages WHERE platform = 'discord'").fetchone() == (
            3,
        )

    brain = await Brain.open(db, flush_interval=0.05, key=KEY)
    try:
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] >= 11
            assert "platform" not in {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
        migrated = logical_dump(db, KEY, learned_ids(corpus))
        assert migrated == expected  # every row converted, nothing lost or changed
        # The recent rows open only given their text id (sealed bound to it, as before 0011).
        assert all(row[3] is None for row in logical_dump(db, KEY)["recent_messages"])
        for m in LIVE:
            found = await brain.store.recent(m.platform, m.id)
            assert found is not None and found[2] is not None
            assert await brain.store.texts(found[2]) == list(tokenize(m.text))
        again = await import_file(brain, corpus, CHAIN, progress=False)
        assert (again.learned, again.duplicates) == (0, len(LINES))
        for m in LIVE:  # re-delivered: learned nothing twice
            await brain.learn(m)
        await brain.flush()
        assert logical_dump(db, KEY, learned_ids(corpus)) == expected
        assert await brain.unlearn_id("discord", "1002") is UnlearnStatus.UNLEARNED  # via its recent row
        assert await brain.unlearn_id("discord", "1002") is UnlearnStatus.NOT_LEARNED
        await brain.forget("discord", "g", "alice")
    finally:
        await brain.close()
    never = tmp_path / "never.sqlite3"
    await learn(never, corpus, [])
    assert logical_dump(db, KEY)["messages"] == logical_dump(never, KEY)["messages"]
    assert logical_dump(db, KEY)["transitions"] == logical_dump(never, KEY)["transitions"]


async def test_two_ids_with_one_key_learn_the_first_and_skip_the_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "message_key", lambda platform, message_id: 7)  # every id collides
    brain = await Brain.open(tmp_path / "c.sqlite3", flush_interval=0.05, key=KEY)
    try:
        first, second = [await brain.learn(m, require_consent=False) for m in LIVE[:2]]
        # The queue knows messages by their key too: the second is refused there, the first commits.
        assert (first.status, second.status) == (LearnStatus.QUEUED, LearnStatus.ALREADY_PENDING)
        result = await brain.flush()
        assert (result.learned, result.duplicates) == (1, 0)
        await brain.learn(LIVE[2], require_consent=False)
        assert (await brain.flush()).learned == 0  # a later batch: known already
        assert (await brain.stats(LIVE[0].chain)).messages_seen == 1
    finally:
        await brain.close()


def test_message_keys_are_fixed_across_versions_and_hash_seeds(tmp_path: Path) -> None:
    # Stored keys must never change: an old file dedupes by them. The values pin blake2b's parameters.
    assert message_key("discord", "1001") == PINNED_DISCORD
    assert message_key("local", "c.txt:1") == PINNED_LOCAL
    probe = "from bot.core.messagekeys import message_key as k; print(k('discord', '1001'), k('local', 'c.txt:1'))"
    assert message_key("matrix", "$ev1:example.org") == PINNED_MATRIX
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.split() == [str(PINNED_DISCORD), str(PINNED_LOCAL)]
    assert message_key("discord", "1001") != message_key("local", "1001")  # the platform is part of it
    assert -(2**63) <= message_key("x", "\ud800") < 2**63  # any id a platform or file gives
    # Discord's ids keep their order (a live bot appends rows); anything else Discord might send is hashed.
    snowflakes = ["1180000000000000000", "1180000000000000001", "1190000000000000000"]
    assert [message_key("discord", i) for i in snowflakes] == [int(i) for i in snowflakes]
    for odd in ("01001", "9" * 20, "１２３", "-5", ""):
        assert message_key("discord", odd) not in (1001, 123, -5), odd
    assert message_key("discord", "01001") != message_key("discord", "1001")


PINNED_DISCORD = 1001  # Discord's ids are their own keys
PINNED_MATRIX = 3928656778325052849
PINNED_LOCAL = 1006691402508701510
