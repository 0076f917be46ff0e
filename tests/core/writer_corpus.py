"""Messages for the writer's tests (tests/core/test_writer.py and its writer processes), and opening a Brain on either engine."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bot.core.brain import Brain
from bot.core.models import LearnStatus, Message
from tests.core.dump import logical_dump
from tests.core.pg_dump import pg_logical_dump

KEY = bytes(range(32))  # one fingerprint key for every database a test compares
WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "é", "ギルド", "🧪", "to", "me", "and", "far"]
CHANNELS = ["c1", "c2", "c3"]
MEMBERS = ["alice", "bob", "carol", "dave"]


def corpus(n: int, seed: int = 7) -> list[Message]:
    """n messages over three channels of one guild and four members, each with an id of its own."""
    rng = random.Random(seed)
    messages = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS[: 6 + i % 9]) for _ in range(rng.randint(1, 12)))
        messages.append(Message("t", "g", rng.choice(CHANNELS), rng.choice(MEMBERS), f"m{i}", text))
    return messages


async def open_brain(where: Path | str, tmp_path: Path, **options: Any) -> Brain:
    """A Brain over a SQLite file or a PostgreSQL URL, keyed with KEY (the PostgreSQL key file: never read)."""
    return await Brain.open(where, key=KEY, key_path=tmp_path / "pg", **{"walker": "thread", **options})


async def learn(brain: Brain, messages: list[Message]) -> None:
    """Learn messages (no consent asked) and commit them."""
    for message in messages:
        status = (await brain.learn(message, require_consent=False)).status
        assert status is LearnStatus.QUEUED, status
    await brain.store.flush()


async def dump(where: Path | str) -> dict[str, Any]:
    """The logical dump of either engine's database (tests.core.dump's form)."""
    if isinstance(where, Path):
        return logical_dump(where, KEY)
    return await pg_logical_dump(where, KEY)
