"""One of three Store processes for tests/core/test_writer.py: `python -m tests.core.pg_store_writers URL BARRIER INDEX TMP`.

Opens a Brain on the PostgreSQL database, waits on the advisory lock BARRIER (held by the test
until every process waits), then writes its share of the corpus, overlapping the others' (same
chains, same message ids), in an order of its own. Processes 0 and 1 learn live, in small batches:
0 the first three quarters of the corpus, merging its delta rows into the blocks only once they are
many; 1 the last three quarters, merging at every commit. Process 2 imports (Brain.importing, the
store in bulk mode) channel c1's messages of the middle three quarters. Prints, as JSON, what it
learned.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import asyncpg

from bot.core.brain import Brain
from bot.core.models import LearnStatus, Message
from tests.core.writer_corpus import corpus, open_brain

BATCH = 9
IMPORTED = "c1"  # the channel process 2 imports


def share(messages: list[Message], index: int) -> list[Message]:
    """What process index writes, in its own order."""
    quarter = len(messages) // 4
    if index == 0:
        mine = messages[: 3 * quarter]
    elif index == 1:
        mine = messages[quarter:]
    else:
        mine = [m for m in messages[quarter // 2 : 3 * quarter + quarter // 2] if m.channel == IMPORTED]
    random.Random(index).shuffle(mine)
    return mine


async def learn_live(brain: Brain, mine: list[Message]) -> None:
    """Learn mine in batches of BATCH, each committed before the next."""
    for lo in range(0, len(mine), BATCH):
        for message in mine[lo : lo + BATCH]:
            status = (await brain.learn(message, require_consent=False)).status
            assert status in (LearnStatus.QUEUED, LearnStatus.ALREADY_LEARNED), status
        await brain.store.flush()


async def import_chain(brain: Brain, mine: list[Message]) -> None:
    """Import mine (one chain's messages) as `markovbot import` does, in batches of BATCH."""
    async with brain.importing(mine[0].chain, workers=0, deletable=True) as learner:
        for lo in range(0, len(mine), BATCH):
            await learner.add([(m.id, m.author, m.text) for m in mine[lo : lo + BATCH]])


async def main(url: str, barrier: int, index: int, tmp: str) -> None:
    mine = share(corpus(400, seed=11), index)
    brain = await open_brain(url, Path(tmp), batch_size=BATCH, merge_rows=30 if index == 0 else 0)
    gate = await asyncpg.connect(url)
    try:
        await gate.execute("SELECT pg_advisory_lock_shared($1)", barrier)
    finally:
        await gate.close()
    try:
        await (import_chain if index == 2 else learn_live)(brain, mine)
        learned = brain.store.committed
    finally:
        await brain.close()
    print(json.dumps({"learned": learned}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
