"""Privacy scenarios over two servers: chains stay in their server, and forget leaves no trace anywhere."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from bot.core.brain import Brain
from bot.core.models import ChainKey, GenerateStatus, Message

P = "t"


async def setup(brain: Brain) -> None:
    for guild, members in {"A": ["alice", "carol"], "B": ["bob", "carol"]}.items():
        for channel in ("public", "private"):
            await brain.set_channel(P, guild, channel, True)
        for member in members:
            await brain.opt_in(P, guild, member)
    corpus = [
        ("A", "public", "alice", "alpha apricot avocado almond"),
        ("A", "public", "carol", "alpha carrot cabbage celery"),
        ("A", "private", "alice", "secretalice plans secretly"),
        ("B", "public", "bob", "beta banana blueberry"),
        ("B", "public", "carol", "beta cherry coconut"),
        ("B", "private", "bob", "secretbob hides things"),
    ]
    for i, (guild, channel, who, text) in enumerate(corpus):
        await brain.learn(Message(P, guild, channel, who, f"m{i}", text))
    await brain.flush()


async def test_no_chain_text_leaves_its_server_or_channel(brain: Brain) -> None:
    await setup(brain)
    for guild, channel, allowed in [
        ("A", "public", {"alpha", "apricot", "avocado", "almond", "carrot", "cabbage", "celery"}),
        ("A", "private", {"secretalice", "plans", "secretly"}),
        ("B", "public", {"beta", "banana", "blueberry", "cherry", "coconut"}),
    ]:
        for seed in range(30):
            result = await brain.generate(ChainKey(P, guild, channel), rng=random.Random(seed), guard=False)
            assert set(result.tokens) <= allowed
    # A member's own chain in one server says nothing of what they said in the other.
    for seed in range(20):
        result = await brain.generate(
            ChainKey(P, "B", "public"), author="carol", rng=random.Random(seed), guard=False
        )
        assert set(result.tokens) <= {"beta", "cherry", "coconut"}
    assert (
        await brain.generate(ChainKey(P, "B", "public"), author="alice")
    ).status is GenerateStatus.NO_MEMBER_DATA


async def test_forget_leaves_no_trace_in_any_table(brain: Brain, db_path: Path) -> None:
    await setup(brain)
    await brain.forget(P, "A", "alice")
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        dump = []
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                dump.extend(str(value) for value in row)
    text = "\n".join(dump)
    for trace in ("alice", "secretalice", "apricot", "avocado", "almond", "plans", "secretly"):
        assert trace not in text, f"{trace!r} survived forget"
    # Everyone else is intact, carol in both servers included.
    assert "carrot" in text and "coconut" in text and "secretbob" in text
    assert (await brain.member_info(P, "A", "carol")).messages == 1
    assert (await brain.member_info(P, "B", "carol")).messages == 1
