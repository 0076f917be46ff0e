"""Learning a chain's messages in batches (an import): prepared ahead, written a batch at a time.

Brain.learn takes one message through the consent checks, the chain and author lookups and the
queue; an import offers hundreds of thousands, and did all that per message on the event loop.
Here a batch is looked up once and handed to the Preparer, which (in a worker process) prepares
the next batches as columns (bot.core.columns) while the writer learns earlier ones, past the
queue: one batch of the writer's size written while the next is gathered. Each message becomes
what Brain.learn would make of it, in the same order: the database is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import Counter, deque
from collections.abc import Sequence

import numpy as np

from bot.core import fingerprints, preparing
from bot.core.columns import Columns, ints
from bot.core.models import ChainInfo, ChainKey, FlushResult, LearnStatus
from bot.core.preparing import Batch, Preparer
from bot.core.store import Store

log = logging.getLogger(__name__)

AHEAD = 8  # batches handed to the preparer and not yet gathered

#: A message offered for learning: (message id, author's external id, text).
Offered = tuple[str, str, str]


class BatchLearner:
    """Learns batches of one chain's messages (no consent check: the caller vouches for them)."""

    def __init__(
        self, store: Store, prep: Preparer, chain: ChainKey, max_chars: int, *, deletable: bool
    ) -> None:
        self._store = store
        self._prep = prep
        self._chain = chain
        self._max_chars = max_chars
        self._keep = deletable  # kept, sealed, for the edit window (see Brain.learn)
        self._info: ChainInfo | None = None
        self._ahead: deque[tuple[list[Offered], tuple[int, int], asyncio.Future[Batch]]] = deque()
        self._gathered: list[Columns] = []  # prepared, not yet written
        self._writing: asyncio.Task[FlushResult] | None = None  # the batch being written
        #: What became of each message offered so far (QUEUED, TOO_LONG, EMPTY...).
        self.statuses: Counter[LearnStatus] = Counter()

    async def add(self, batch: Sequence[Offered]) -> None:
        """Offer a batch: prepared while earlier ones are written (this waits while the writer is busy)."""
        if not self._chain.guild:
            self.statuses[LearnStatus.NO_GUILD] += len(batch)
            return
        kept = [m for m in batch if len(m[2]) <= self._max_chars]
        self.statuses[LearnStatus.TOO_LONG] += len(batch) - len(kept)
        if not kept:
            return
        scheme = await self._scheme()
        ids = [m[0] for m in kept]
        future = self._prep.submit([m[2] for m in kept], *scheme, self._chain.platform, ids)
        self._ahead.append((kept, scheme, future))
        while len(self._ahead) > AHEAD:
            await self._gather_next()

    async def finish(self) -> None:
        """Write every batch offered."""
        while self._ahead:
            await self._gather_next()
        if self._gathered:
            await self._write(Columns.concat(self._gathered))
            self._gathered = []
        await self._written()

    async def abandon(self) -> None:
        """Drop the batches offered and not yet written (the import failed); the one being written ends."""
        # Not cancelled: CPython 3.11's pool, broken by a worker killed, sets an error on every future it
        # holds, and raises in its own thread on one cancelled meanwhile. Stopping the Preparer drops them.
        for _, _, future in self._ahead:
            future.add_done_callback(_retrieved)
        self._ahead.clear()
        self._gathered = []
        with contextlib.suppress(Exception):  # the import's own error is the one reported
            await self._written()

    async def _scheme(self) -> tuple[int, int]:
        """(run length, fingerprint scheme) the chain's fingerprints are made with (a new chain's if none)."""
        if self._info is None:
            self._info = await self._store.find_chain(self._chain)
        if self._info is not None:
            return self._info.run_length, self._info.scheme
        settings = await self._store.guild_state.settings(self._chain.platform, self._chain.guild)
        return settings.run_length, fingerprints.CURRENT

    async def _gather_next(self) -> None:
        """Wait for the oldest batch's preparation, and write a batch of the writer's size once one is gathered."""
        batch, scheme, future = self._ahead.popleft()
        prepared, kept = await self._prep.result(future)
        self.statuses[LearnStatus.EMPTY] += len(batch) - len(kept)
        if not len(kept):
            return
        info = self._info
        if info is None:  # the chain is made by its first message with a token, as Brain.learn does
            settings = await self._store.guild_state.settings(self._chain.platform, self._chain.guild)
            info = self._info = await self._store.chain(self._chain, settings)
        if (info.run_length, info.scheme) != scheme:  # made meanwhile, otherwise: fingerprint again
            prepared = preparing.refit(self._prep.fp, prepared, info.run_length, info.scheme)
        authors: dict[str, int] = {}  # looked up once a batch (a member forgotten meanwhile is made again)
        for author in dict.fromkeys(batch[i][1] for i in kept.tolist()):
            authors[author] = await self._store.author(self._chain.platform, self._chain.guild, author)
        n = len(kept)
        self._gathered.append(
            dataclasses.replace(
                prepared,
                chains=np.full(n, info.id, dtype=np.int64),
                orders=np.full(n, info.order, dtype=np.int64),
                authors=ints([authors[batch[i][1]] for i in kept.tolist()], n),
                keep=np.full(n, self._keep, dtype=np.bool_),
            )
        )
        size = self._store.batch_size
        while (held := sum(map(len, self._gathered))) >= size:
            last = self._gathered.pop()  # the batch is full within it: cut it there
            cut = len(last) - (held - size)
            await self._write(Columns.concat([*self._gathered, last.select(slice(0, cut))]))
            self._gathered = [last.select(slice(cut, None))] if cut < len(last) else []

    async def _write(self, batch: Columns) -> None:
        """Write a batch once the one before is written (its error raised here)."""
        await self._written()
        self.statuses[LearnStatus.QUEUED] += len(batch)
        self._writing = asyncio.create_task(self._store.learn_columns(batch))

    async def _written(self) -> None:
        """Wait until the batch being written is."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing


def _retrieved(future: asyncio.Future[Batch]) -> None:
    """Take a dropped batch's outcome (a worker's error is reported once, by the batch that met it)."""
    if not future.cancelled():
        future.exception()
