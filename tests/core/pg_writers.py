"""One of several writer processes for the PostgreSQL tests: `python -m tests.core.pg_writers URL BARRIER INDEX`.

Opens the database, waits on the advisory lock BARRIER (held by the test until every process
waits, so all start at once), then runs ROUNDS write transactions, each resolving (creating) an
overlapping sample of POOL tokens in its own order and adding refs to them, and making an author
and a chain drawn from small overlapping sets. Prints, as JSON, every id it was handed for each
name and the refs it added.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter

import asyncpg

from bot.core.engines import PostgresUrl
from bot.core.models import ChainKey, GuildSettings
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.registry import Registry
from bot.core.postgres.transactions import PgWrites
from bot.core.postgres.vocabulary import Vocabulary

ROUNDS = 40
POOL = [f"w{i}" for i in range(600)] + ["é", "É", "🧪", "ギルド", "a b", "'; --"]
PER_ROUND = 50
AUTHORS = 30
CHAINS = 12


def seen(found: dict[str, set[int]], name: str, given: int) -> None:
    found.setdefault(name, set()).add(given)


async def main(url: str, barrier: int, index: int) -> None:
    db = await PgDatabase.open(PostgresUrl(url))
    writes = PgWrites(db)
    vocabulary = Vocabulary(db, writes, cache_size=len(POOL) // 2)  # some ids come from the cache
    registry = Registry(db)
    gate = await asyncpg.connect(url)
    try:
        await gate.execute("SELECT pg_advisory_lock_shared($1)", barrier)
    finally:
        await gate.close()
    rng = random.Random(index)
    tokens: dict[str, set[int]] = {}
    authors: dict[str, set[int]] = {}
    chains: dict[str, set[int]] = {}
    refs: Counter[str] = Counter()
    try:
        for _ in range(ROUNDS):
            sample = rng.sample(POOL, PER_ROUND)
            added = {text: rng.randint(1, 3) for text in sample}
            async with writes.transaction():
                ids = await vocabulary.resolve(sample, create=True)
                await vocabulary.add_refs({ids[text]: n for text, n in added.items()})
            for text in sample:
                seen(tokens, text, ids[text])
            refs.update(added)
            guild, member = f"g{rng.randrange(3)}", f"m{rng.randrange(AUTHORS)}"
            seen(authors, f"{guild}/{member}", await registry.add_author("discord", guild, member))
            channel = f"c{rng.randrange(CHAINS)}"
            info = await registry.add_chain(ChainKey("discord", guild, channel), GuildSettings())
            seen(chains, f"{guild}/{channel}", info.id)
    finally:
        await db.close()
    report = {
        "tokens": {k: sorted(v) for k, v in tokens.items()},
        "authors": {k: sorted(v) for k, v in authors.items()},
        "chains": {k: sorted(v) for k, v in chains.items()},
        "refs": dict(refs),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
