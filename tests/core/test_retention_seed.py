"""The report's sample is seeded from the chain's own state: the same database reports the same anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.core import retention
from bot.core.brain import Brain
from bot.core.models import ChainKey, Message
from tests.core.test_retention import varied_corpus

CHAIN = ChainKey("local", "local", "c")  # what `markovbot stats --chain c` reads


async def learn(path: Path, corpus: list[str]) -> Brain:
    brain = await Brain.open(path, flush_interval=0.05)
    await brain.opt_in("local", "local", "me")
    await brain.set_channel("local", "local", "c", True)
    for i, text in enumerate(corpus):
        await brain.learn(Message("local", "local", "c", "me", str(i), text))
    await brain.flush()
    return brain


def stats_json(db: Path, hash_seed: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(Path.cwd())}
    env.pop("MARKOV_FINGERPRINT_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--db", str(db), "stats", "--chain", "c", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report: dict[str, object] = json.loads(done.stdout)
    return report


async def test_the_same_database_reports_the_same_under_any_hash_seed(tmp_path: Path) -> None:
    db = tmp_path / "markov.sqlite3"
    await (await learn(db, varied_corpus(300, words=300))).close()
    first, second = stats_json(db, "1"), stats_json(db, "4242")
    assert first == second
    copies = first["copies"]
    assert isinstance(copies, dict) and 0 < copies["value"] < 1
    assert first["samples"] == retention.DEFAULT_SAMPLES


async def test_the_seed_follows_the_chain_state_and_nothing_else(tmp_path: Path) -> None:
    corpus = varied_corpus(200, words=300)
    one, two = await learn(tmp_path / "one.sqlite3", corpus), await learn(tmp_path / "two.sqlite3", corpus)
    try:
        info = await one.store.find_chain(CHAIN)
        assert info is not None
        report = await one.stats(CHAIN)
        counters = await one.store.chain_counters(info.id)
        assert report.seed == retention.state_seed(info, counters)
        assert (await two.stats(CHAIN)).seed == report.seed  # another database, the same chain
        await one.learn(Message("local", "local", "c", "me", "new", "one more message"))
        assert (await one.stats(CHAIN)).seed != report.seed
    finally:
        await one.close()
        await two.close()
