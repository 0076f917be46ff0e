"""An import's transaction, shared by its batches: begun explicitly, its counts staged, committed at the end.

On SQLite it is the writer connection's BEGIN IMMEDIATE, and a transaction that fails is not run
again: what it held (batches since the last commit) is gone, and the import stops there. On
PostgreSQL other processes write while the import runs: a transaction held over many batches would
lock their rows out of order (a deadlock that ends the import) and meet the messages they learned
meanwhile, so each batch is a transaction of its own, its messages claimed (those another writer
learned meanwhile skipped), its staged counts merged before it commits, run again whole after a
deadlock (bot.core.writer.Writer.transaction).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bot.core.columns import Columns
from bot.core.models import FlushResult
from bot.core.schema import StoreError
from bot.core.staging import Staging

if TYPE_CHECKING:
    from bot.core.writer import Writer


BULK_MESSAGE_BYTES = 3072  # memory per message an import holds queued or counted (measured at 1M)


@dataclass(frozen=True)
class Budget:
    """An import's memory, shared out."""

    batch: int  # messages a batch
    pending: int  # messages queued at most
    staged_bytes: int  # staged counts from which its transaction commits
    cache_kib: int  # the writer's page cache meanwhile


def budget(memory_mb: int, batch_size: int, max_pending: int, cache_kib: int) -> Budget:
    """Share out an import's memory (never below the live writer's batch, queue and cache).

    A B-tree page changed by a transaction is written once (to the WAL, then the file) however many
    rows of the transaction changed it, and a batch's rows are spread over the whole tree: so an
    import's batches share one transaction, their counts staged in memory, packed (see
    bot.core.staging), until a quarter of the budget is staged. An eighth of the budget is a batch
    (BULK_MESSAGE_BYTES a message: queued and counted, two batches at once), an eighth the writer's
    page cache; the rest is the interpreter's own.
    """
    total = memory_mb * 2**20
    batch = max(batch_size, total // 8 // BULK_MESSAGE_BYTES)
    return Budget(batch, max(max_pending, 2 * batch), total // 4, max(cache_kib, total // 8 // 1024))


class BulkWrite:
    """An import's transaction, shared by its batches (bot.core.writer.Writer.begin_bulk)."""

    def __init__(self, writer: Writer, staged_bytes: int, seconds: float) -> None:
        self._writer = writer
        self.staged_bytes = staged_bytes  # staged counts from which it commits ...
        self.seconds = seconds  # ... or time open from which it does
        self.opened = 0.0  # when it began (time.monotonic)
        self.open = False
        self.failed: str | None = None  # why it was rolled back (then every later batch is refused)
        self.chains: set[int] = set()  # chains it wrote to
        writer.counts.staging = Staging()

    def close(self) -> None:
        """Leave bulk mode: counts go to the delta again."""
        self._writer.counts.staging = None

    async def learn(self, batch: Columns) -> FlushResult:
        """Learn a batch in the open bulk transaction (begun if none is); commit it once enough is staged."""
        if self._writer.tx.sql.shared:
            return await self._learn_alone(batch)
        learned = [0]

        async def work() -> None:
            fresh = await self._writer.fresh(batch)
            learned[0] = len(fresh)
            if len(fresh):
                await self._writer.apply(fresh, sign=1)
                self.chains.update(np.unique(fresh.chains).tolist())

        await self.run(work)
        staging = self._writer.counts.staging
        staged = staging.nbytes if staging is not None else 0
        if staged >= self.staged_bytes or time.monotonic() - self.opened >= self.seconds:
            await self.commit()
        return FlushResult(learned[0], len(batch) - learned[0])

    async def _learn_alone(self, batch: Columns) -> FlushResult:
        """Learn a batch in a transaction of its own (PostgreSQL), run again whole after a deadlock."""
        if self.failed is not None:
            raise StoreError(f"the import stopped: {self.failed}")
        writer = self._writer
        chains: list[int] = []
        learned = [0]

        async def work() -> None:
            await writer.counts.drop_staged()  # a transaction run again starts over
            # Messages a live writer learns meanwhile are waited for and skipped: run again on a unique
            # violation, a large batch could meet another one at every run.
            fresh = await writer.claim(await writer.fresh(batch))
            learned[0], chains[:] = len(fresh), np.unique(fresh.chains).tolist()
            if len(fresh):
                await writer.apply(fresh, sign=1, claimed=True)
                await writer.counts.merge_staged()

        try:
            await writer.transaction(work)
        except BaseException as exc:
            await writer.counts.drop_staged()
            self.failed = str(exc) or type(exc).__name__  # the batch is lost: learning more would leave a gap
            raise
        for chain_id in chains:  # the walker's caches read the chains again
            writer.versions.wrote(chain_id)
        return FlushResult(learned[0], len(batch) - learned[0])

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run work in the open bulk transaction (begun if none is); a failure rolls it back and stops the import."""
        if (
            self.failed is not None
        ):  # what the failed transaction held is gone: learning more would leave a gap
            raise StoreError(f"the import stopped: {self.failed}")
        try:
            if not self.open:
                await self._writer.begin()
                self.open, self.opened = True, time.monotonic()
            await work()
        except BaseException as exc:
            await self._abandon(exc)
            raise

    async def commit(self) -> None:
        """Merge what the open bulk transaction staged into the blocks, and commit it."""
        if not self.open:
            return
        writer = self._writer
        try:
            await writer.counts.merge_staged()
            await writer.tx.commit()
        except BaseException as exc:
            await self._abandon(exc)
            raise
        self.open = False
        for chain_id in self.chains:  # the walker's caches read the chains again
            writer.versions.wrote(chain_id)
        self.chains.clear()
        writer._hubs.publish()

    async def _abandon(self, exc: BaseException) -> None:
        """After the bulk transaction failed: roll it back, drop every cache, and refuse further batches
        (when it held any: a transaction that failed to begin lost nothing)."""
        if self.open and self.failed is None:
            self.failed = str(exc) or type(exc).__name__
        self.open = False
        await self._writer.counts.drop_staged()
        await self._writer.rollback()
        self._writer._hubs.publish()
