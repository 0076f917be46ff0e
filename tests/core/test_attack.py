"""The fingerprint-guided attack: the database alone confirms nothing; database and key rebuild short messages."""

from __future__ import annotations

import contextlib
import random
import sqlite3
from pathlib import Path

import pytest

from bot.core import keys
from bot.core.attack import fingerprint_attack
from bot.core.brain import Brain
from bot.core.tokens import tokenize
from tests.core.test_keys import OLD_KEY, file_bytes, holds, learn, legacy_database

WORDS = ["i", "you", "we", "it", "the", "a", "dog", "cat", "sat", "ran", "here", "there", "now", "yes"]


def corpus(seed: int = 7) -> tuple[list[str], set[tuple[str, ...]]]:
    """Short messages over a small shared vocabulary (many chain paths), and a few long ones."""
    rng = random.Random(seed)
    short = [" ".join(rng.choices(WORDS, k=rng.randint(1, 6))) for _ in range(80)]
    long = [" ".join(rng.choices(WORDS, k=rng.randint(8, 12))) for _ in range(10)]
    return short + long, {tuple(tokenize(text)) for text in short}


def keys_found_in(path: Path) -> list[bytes]:
    """Every key an attacker holding only the file could try: each meta value, as hex and as text."""
    found = [bytes(16), b"markovbot" * 2]
    with sqlite3.connect(path) as db:
        for (value,) in db.execute("SELECT value FROM meta"):
            found.append(value.encode())
            with contextlib.suppress(ValueError):
                found.append(bytes.fromhex(value))
    return [k[:64] for k in found if k]


def chain_id(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT id FROM chains").fetchone()[0])


async def test_the_database_alone_confirms_nothing_and_the_key_rebuilds_every_short_message(
    db_path: Path,
) -> None:
    texts, short = corpus()
    brain = await Brain.open(db_path)
    try:
        await learn(brain, texts)
        key = brain.store.key
    finally:
        await brain.close()
    chain = chain_id(db_path)
    with_key = fingerprint_attack(db_path, key, chain, max_tokens=6)
    assert not with_key.exhausted
    assert with_key.confirmed == short
    for guess in keys_found_in(db_path):
        alone = fingerprint_attack(db_path, guess, chain, max_tokens=6)
        assert alone.candidates == with_key.candidates > len(short)  # the same walk, every path tried
        assert alone.confirmed == set()
    assert not holds(file_bytes(db_path), key)


async def test_an_old_database_gave_its_messages_away_until_its_salt_moved_out(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts, short = corpus(seed=8)
    await legacy_database(db_path, monkeypatch, texts)
    chain = chain_id(db_path)
    found = set().union(*(fingerprint_attack(db_path, k, chain).confirmed for k in keys_found_in(db_path)))
    assert found == short  # the salt in meta was the key
    await (await Brain.open(db_path)).close()  # moves it to the key file
    for guess in keys_found_in(db_path):
        assert fingerprint_attack(db_path, guess, chain).confirmed == set()
    assert fingerprint_attack(db_path, OLD_KEY, chain).confirmed == short
    assert keys.read_file(keys.key_file(db_path)) == OLD_KEY


async def test_the_attack_stops_at_its_budget(db_path: Path) -> None:
    brain = await Brain.open(db_path)
    try:
        await learn(brain, corpus()[0])
        key = brain.store.key
    finally:
        await brain.close()
    bounded = fingerprint_attack(db_path, key, chain_id(db_path), budget=50)
    assert bounded.exhausted and bounded.expanded == 50
