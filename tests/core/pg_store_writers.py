"""One of two Store processes for tests/core/test_writer.py: `python -m tests.core.pg_store_writers URL BARRIER INDEX TMP`.

Opens a Brain on the PostgreSQL database, waits on the advisory lock BARRIER (held by the test
until both processes wait), then learns in small batches its share of the corpus: three quarters of
it, overlapping the other's by half, in an order of its own; process 1 merges its delta rows into
the blocks at every commit, process 0 only once they are many. Prints, as JSON, what it learned.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import asyncpg

from bot.core.models import LearnStatus
from tests.core.writer_corpus import corpus, open_brain


async def main(url: str, barrier: int, index: int, tmp: str) -> None:
    messages = corpus(400, seed=11)
    half = len(messages) // 4
    mine = messages[: 3 * half] if index == 0 else messages[half:]
    random.Random(index).shuffle(mine)
    brain = await open_brain(url, Path(tmp), batch_size=9, merge_rows=0 if index else 30)
    gate = await asyncpg.connect(url)
    try:
        await gate.execute("SELECT pg_advisory_lock_shared($1)", barrier)
    finally:
        await gate.close()
    try:
        for lo in range(0, len(mine), 9):
            for message in mine[lo : lo + 9]:
                status = (await brain.learn(message, require_consent=False)).status
                assert status in (LearnStatus.QUEUED, LearnStatus.ALREADY_LEARNED), status
            await brain.store.flush()
        learned = brain.store.committed
    finally:
        await brain.close()
    print(json.dumps({"learned": learned}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
