"""Learning a chain's messages in batches (an import): prepared ahead, queued a batch at a time.

Brain.learn takes one message through the consent checks, the chain and author lookups and the
queue; an import offers hundreds of thousands, and did all that per message on the event loop.
Here a batch is looked up once and handed to the Preparer, which (in a worker process) prepares
the next batches while this one is queued and the writer commits earlier ones. Each message
becomes what Brain.learn would make of it, in the same order: the database is the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Sequence

from bot.core import fingerprints, preparing
from bot.core.models import ChainInfo, ChainKey, LearnStatus, PendingMessage
from bot.core.preparing import Batch, Preparer
from bot.core.store import Store

log = logging.getLogger(__name__)

AHEAD = 2  # batches handed to the preparer and not yet queued: one being prepared, one waiting

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
        #: What became of each message offered so far (QUEUED, TOO_LONG, EMPTY, ALREADY_PENDING...).
        self.statuses: Counter[LearnStatus] = Counter()

    async def add(self, batch: Sequence[Offered]) -> None:
        """Offer a batch: prepared while earlier ones are queued (this waits while the queue is full)."""
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
            await self._queue_next()

    async def finish(self) -> None:
        """Queue every batch offered."""
        while self._ahead:
            await self._queue_next()

    def abandon(self) -> None:
        """Drop the batches offered and not yet queued (the import failed): nothing waits for them."""
        for _, _, future in self._ahead:
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a worker's error is not reported twice
            future.cancel()
        self._ahead.clear()

    async def _scheme(self) -> tuple[int, int]:
        """(run length, fingerprint scheme) the chain's fingerprints are made with (a new chain's if none)."""
        if self._info is None:
            self._info = await self._store.find_chain(self._chain)
        if self._info is not None:
            return self._info.run_length, self._info.scheme
        settings = await self._store.guild_state.settings(self._chain.platform, self._chain.guild)
        return settings.run_length, fingerprints.CURRENT

    async def _queue_next(self) -> None:
        """Wait for the oldest batch's preparation and queue its messages for the writer."""
        batch, scheme, future = self._ahead.popleft()
        prepared, keys, sizes = await self._prep.result(future)
        platform, guild, keep = self._chain.platform, self._chain.guild, self._keep
        authors: dict[str, int] = {}  # looked up once a batch (a member forgotten meanwhile is made again)
        out: list[PendingMessage] = []
        info = self._info
        refit: bool | None = None  # the chain's fingerprints differ from the batch's (known once info is)
        for (message_id, author, text), ready, key, size in zip(batch, prepared, keys, sizes, strict=True):
            if ready is None:
                self.statuses[LearnStatus.EMPTY] += 1
                continue
            if info is None:  # the chain is made by its first message with a token, as Brain.learn does
                settings = await self._store.guild_state.settings(platform, guild)
                info = self._info = await self._store.chain(self._chain, settings)
            if refit is None:
                refit = (info.run_length, info.scheme) != scheme
            if refit:  # made meanwhile, otherwise: fingerprint again
                ready = preparing.fingerprinted(self._prep.fp, ready[0], info.run_length, info.scheme)
            author_id = authors.get(author)
            if author_id is None:
                author_id = authors[author] = await self._store.author(platform, guild, author)
            out.append(
                preparing.pending(platform, message_id, info, author_id, ready, len(text), size, keep, key)
            )
        queued = await self._store.enqueue_many(out)
        self.statuses[LearnStatus.QUEUED] += queued
        self.statuses[LearnStatus.ALREADY_PENDING] += len(out) - queued
