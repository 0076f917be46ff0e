"""Hubs: wide contexts summed over authors, kept exact by the writer and read by walks."""

from __future__ import annotations

import random
import sqlite3
from array import array
from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.core import chain as chainmod
from bot.core import hubs
from bot.core.brain import Brain
from bot.core.models import ChainKey, Message
from tests.core.dump import hub_count, hub_errors

P, G = "test", "guild"
FINGERPRINT_KEY = b"0123456789abcdef"
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "and", "then", "slept"]


def corpus(n: int, seed: int = 1) -> list[Message]:
    rng = random.Random(seed)
    return [
        Message(P, G, "c1", f"u{i % 5}", str(i), " ".join(rng.choices(WORDS, k=rng.randint(1, 8))))
        for i in range(n)
    ]


async def learned(path: Path, messages: list[Message], **options: object) -> Brain:
    brain = await Brain.open(path, flush_interval=0.05, key=FINGERPRINT_KEY, **options)
    for m in messages:
        await brain.learn(m, require_consent=False)
    await brain.flush()
    return brain


def steer_opening_hub(db: Path, word: str) -> None:
    """Rewrite the start-of-message hub so that `word` is its only successor."""
    start = chainmod.pack([chainmod.BEGIN, chainmod.BEGIN])
    conn = sqlite3.connect(db)
    try:
        (token_id,) = conn.execute("SELECT id FROM tokens WHERE text = ?", (word,)).fetchone()
        changed = conn.execute(
            "UPDATE hubs SET next_ids = ?, counts = ? WHERE ctx = ?",
            (*hubs.encode(array("q", [token_id]), array("q", [1])), start),
        ).rowcount
        conn.commit()
    finally:
        conn.close()
    assert changed == 1, "the opening context is not a hub"


@given(st.lists(st.dictionaries(st.integers(2, 30), st.integers(-4, 6), max_size=8), max_size=12))
def test_adding_counts_keeps_ids_sorted_and_drops_what_reaches_zero(
    changes: list[dict[int, int]],
) -> None:
    packed = hubs.from_rows([])
    model: Counter[int] = Counter()
    for delta in changes:
        hubs.add(packed, delta)
        for next_id, k in delta.items():
            if next_id in model or k > 0:
                model[next_id] += k
        model = Counter({n: k for n, k in model.items() if k > 0})
    ids, counts = packed
    assert list(ids) == sorted(model) and list(counts) == [model[n] for n in sorted(model)]
    assert [list(part) for part in hubs.decode(*hubs.encode(*packed))] == [list(ids), list(counts)]


def test_choices_from_a_hub_are_the_cumulative_counts() -> None:
    ids, cum = hubs.choices((array("q", [4, 9]), array("q", [2, 5])))
    assert (list(ids), list(cum)) == ([4, 9], [2, 7])


async def test_a_context_becomes_a_hub_when_it_has_hub_rows_rows(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    # Each of the message's three contexts ((BEGIN, BEGIN), (BEGIN, hello), (hello, there)) has
    # a row per author: two authors, two rows each; the third author makes three.
    brain = await learned(
        db, [Message(P, G, "c1", f"u{i}", str(i), "hello there") for i in range(2)], hub_rows=3
    )
    try:
        assert hub_count(db) == 0
        await brain.learn(Message(P, G, "c1", "u2", "2", "hello there"), require_consent=False)
        await brain.flush()
        assert hub_count(db) == 3
        await brain.learn(Message(P, G, "c1", "u0", "3", "hello you"), require_consent=False)
        await brain.flush()
        assert hub_errors(db) == []
    finally:
        await brain.close()


async def test_replies_are_the_same_with_and_without_hubs(tmp_path: Path) -> None:
    messages = corpus(300)
    key = ChainKey(P, G, "c1")
    replies = []
    for name, hub_rows in (("hubs.db", 1), ("plain.db", 10**9)):
        brain = await learned(tmp_path / name, messages, hub_rows=hub_rows)
        try:
            outs = [await brain.generate(key, rng=random.Random(seed), guard=False) for seed in range(40)]
            replies.append([out.text for out in outs])
        finally:
            await brain.close()
    assert hub_count(tmp_path / "hubs.db") > 0 and hub_count(tmp_path / "plain.db") == 0
    assert hub_errors(tmp_path / "hubs.db") == []
    assert replies[0] == replies[1] and all(replies[0])


async def test_walks_read_a_context_from_its_hub(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    brain = await learned(db, corpus(50), hub_rows=1)
    await brain.close()
    steer_opening_hub(db, "dog")  # only one successor left: walks must follow it
    brain = await Brain.open(db, key=FINGERPRINT_KEY)
    try:
        outs = [
            await brain.generate(ChainKey(P, G, "c1"), rng=random.Random(s), guard=False) for s in range(10)
        ]
    finally:
        await brain.close()
    assert all(out.text and out.text.split()[0] == "dog" for out in outs)


async def test_reset_removes_the_chains_hubs_and_leaves_the_others_exact(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    other = [Message(P, G, "c2", m.author, "o" + m.id, m.text) for m in corpus(40, seed=2)]
    brain = await learned(db, corpus(40) + other, hub_rows=1)
    try:
        before = hub_count(db)
        await brain.reset(ChainKey(P, G, "c1"))
        assert 0 < hub_count(db) < before
        await brain.learn(Message(P, G, "c2", "u9", "new", "the cat ran"), require_consent=False)
        await brain.learn(Message(P, G, "c1", "u9", "new1", "the cat ran"), require_consent=False)
        await brain.flush()
        assert hub_errors(db) == []
    finally:
        await brain.close()


async def test_a_running_walker_reads_a_hub_made_after_it_started(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    key = ChainKey(P, G, "c1")
    first = [("u0", "hello there"), ("u1", "hello there"), ("u0", "zebra")]
    brain = await learned(
        db, [Message(P, G, "c1", a, str(i), text) for i, (a, text) in enumerate(first)], hub_rows=4
    )
    try:
        assert (await brain.generate(key, rng=random.Random(0), guard=False)).text  # the walker is warm
        assert hub_count(db) == 0
        await brain.learn(Message(P, G, "c1", "u2", "9", "hello there"), require_consent=False)
        await brain.flush()  # the opening context now has four rows: a hub
        steer_opening_hub(db, "zebra")
        outs = [await brain.generate(key, rng=random.Random(s), guard=False) for s in range(8)]
    finally:
        await brain.close()
    assert [out.text for out in outs] == ["zebra"] * 8
