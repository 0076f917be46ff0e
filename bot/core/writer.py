"""The writer: batches applied in one transaction each, forget, reset, unlearn, pruning, new chains and authors.

One implementation for both engines: every statement is named (``sql.statements``), and the
transactions go through bot.core.writetx (SQLite's BEGIN IMMEDIATE, or a pooled PostgreSQL
connection held for the transaction, run again after a deadlock). An import's shared transaction
is bot.core.bulkwrite's; forget and reset are bot.core.removal's, and SQLite's new chains and
authors bot.core.registrywrites', each run through this writer's transactions.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Union

import numpy as np

from bot.core import counting, learnlog
from bot.core.bulkwrite import BulkWrite
from bot.core.columns import Bools, Columns, Ints, ints
from bot.core.contracts import GuildStateStore, VocabularyStore
from bot.core.countwriter import CountWriter
from bot.core.hubcache import HubCache
from bot.core.models import (
    ChainInfo,
    ChainKey,
    FlushResult,
    ForgetResult,
    GuildSettings,
    PendingMessage,
    UnlearnStatus,
)
from bot.core.registry import Registry
from bot.core.registrywrites import RegistryWriter
from bot.core.removal import Removal
from bot.core.sealed import Sealer
from bot.core.versions import ChainVersions
from bot.core.writetx import RETRIES, ReaderSql, WriteTx

if TYPE_CHECKING:
    from bot.core.postgres.registry import Registry as PgRegistry

    AnyRegistry = Union[Registry, PgRegistry]  # noqa: UP007 -- a string alias, evaluated only by mypy

log = logging.getLogger(__name__)


def _aggregate(
    batch: Columns, found: dict[str, int]
) -> tuple[Ints, list[counting.Counted], Ints, dict[int, int], dict[int, list[int]]]:
    """Count a batch (found: its tokens' ids): each vocabulary entry's id, transitions per chain,
    window rows (both sorted by key), token refs, chain counters.

    Sorted rows make each statement walk its B-tree in key order (2x faster than random order).
    """
    ids = ints(map(found.__getitem__, batch.vocab), len(batch.vocab))
    trans, refs = counting.count(batch, ids)
    chains, which = np.unique(batch.chains, return_inverse=True)
    sums = np.zeros((len(chains), 4), dtype=np.int64)
    np.add.at(
        sums,
        which,
        np.column_stack([np.ones(len(batch), dtype=np.int64), batch.lengths, batch.chars, batch.sizes]),
    )
    counters = dict(zip(chains.tolist(), sums.tolist(), strict=True))
    return ids, trans, counting.windows(batch), refs, counters


def message_rows(batch: Columns) -> list[tuple[object, ...]]:
    """The messages table's row of each message of a batch, in key order."""
    order = np.argsort(batch.keys, kind="stable")
    normals = [
        normal if formed else None
        for normal, formed in zip(batch.normals[order].tolist(), batch.formed[order].tolist(), strict=True)
    ]
    return list(
        zip(
            batch.keys[order].tolist(),
            batch.chains[order].tolist(),
            batch.authors[order].tolist(),
            batch.fingerprints[order].tolist(),
            normals,
            batch.lengths[order].tolist(),
            batch.chars[order].tolist(),
            batch.sizes[order].tolist(),
            strict=True,
        )
    )


def _recent_rows(batch: Columns, ids: Ints, now: int, sealer: Sealer) -> list[tuple[object, ...]]:
    """The recent_messages rows of a batch's messages kept for the edit window, in key order."""
    packed = ids[batch.tokens].astype(">u4")  # as chain.pack packs them: big-endian uint32s
    ends = np.cumsum(batch.lengths)
    rows = [
        (key, chain_id, author_id, now, sealer.seal(key, packed[end - n : end].tobytes()))
        for key, chain_id, author_id, end, n in zip(
            batch.keys[batch.keep].tolist(),
            batch.chains[batch.keep].tolist(),
            batch.authors[batch.keep].tolist(),
            ends[batch.keep].tolist(),
            batch.lengths[batch.keep].tolist(),
            strict=True,
        )
    ]
    return sorted(rows, key=_first)


def _first(row: Sequence[object]) -> int:
    """A message row's key (its first column)."""
    key = row[0]
    assert isinstance(key, int)
    return key


class Writer:
    """Every write transaction of the store (the caller holds the write lock, or the method takes it)."""

    def __init__(
        self,
        tx: WriteTx,
        vocabulary: VocabularyStore,
        hubs: HubCache,
        guilds: GuildStateStore,
        registry: AnyRegistry,
        versions: ChainVersions,
        *,
        edit_window_days: int,
        clock: Callable[[], float],
        prune_seconds: float,
        prune_rows: int,
        lock: asyncio.Lock,
        reads: ReaderSql,
    ) -> None:
        self.tx = tx
        self.lock = lock  # the store's write lock
        self._reads = reads  # outside a transaction (the reader connection, or the pool)
        self._sql = tx.sql
        self._q = tx.sql.statements
        self._vocabulary = vocabulary
        self._hubs = hubs
        self._guilds = guilds
        self._registry = registry
        self.versions = versions  # told of every write to a chain
        self.edit_window_days = edit_window_days
        self.clock = clock  # unix seconds: when a message was learned, and when its row expires
        self._prune_seconds = prune_seconds
        self._prune_rows = prune_rows
        self._next_prune = -math.inf
        self._sealer: Sealer | None = None  # seals recent messages, once the store has its key
        self.counts = CountWriter(tx.sql, hubs)  # where transition counts go: the delta or the blocks
        self.bulk: BulkWrite | None = None  # an import's: batches share a transaction, counts staged
        self.removal = Removal(  # forget and reset
            tx, vocabulary, guilds, registry, versions, self.counts, lock=lock, transaction=self.transaction
        )
        # SQLite's chains and authors (PostgreSQL's registry makes its own, and this part is never called)
        self.registry_writes = RegistryWriter(tx, registry, lock=lock, transaction=self.transaction)

    @property
    def sealer(self) -> Sealer:
        """Seals recent messages (see bot.core.sealed)."""
        if self._sealer is None:
            raise RuntimeError("store is not open")
        return self._sealer

    @sealer.setter
    def sealer(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def prune_due(self) -> bool:
        """True when recent messages past the window are due to be dropped (not during an import)."""
        return self.bulk is None and self.clock() >= self._next_prune

    def begin_bulk(self, staged_bytes: int, seconds: float) -> None:
        """From now, batches share one transaction, their counts staged, committed once the staged
        counts reach staged_bytes (see bot.core.staging) or it has been open for seconds, and at end_bulk."""
        self.bulk = BulkWrite(self, staged_bytes, seconds)

    @property
    def bulk_failed(self) -> bool:
        """True when an import's transaction was rolled back with batches in it (the import must stop)."""
        return self.bulk is not None and self.bulk.failed is not None

    async def end_bulk(self) -> None:
        """Commit the open bulk transaction, if any (the caller holds the write lock), and leave bulk mode."""
        try:
            if self.bulk is not None:
                await self.bulk.commit()
        finally:
            if self.bulk is not None:
                self.bulk.close()
            self.bulk = None

    async def prune(self) -> None:
        """Drop recent messages learned before the window, in one bounded transaction (write lock held)."""
        now = self.clock()
        # learned_at < cutoff, for whole seconds: the same as against the exact (fractional) cutoff
        cutoff = math.ceil(now - self.edit_window_days * 86_400) if self.edit_window_days else 2**63 - 1
        dropped = [0]
        expired = await self._reads.fetchone(self._q["recent_expired"], (cutoff,)) is not None
        if not expired:  # the usual case: no write transaction (and none on a read-only file)
            self._next_prune = now + self._prune_seconds
            return

        async def work() -> None:
            dropped[0] = len(await self._sql.fetchall(self._q["prune_recent"], (cutoff, self._prune_rows)))

        await self.transaction(work)
        # A full prune leaves more behind: go on at the next flush rather than in a minute.
        self._next_prune = now if dropped[0] >= self._prune_rows else now + self._prune_seconds
        if dropped[0]:
            log.debug("dropped %d recent messages past the %d-day window", dropped[0], self.edit_window_days)

    async def commit(
        self, batch: Columns | Sequence[PendingMessage], applied: int | None = None
    ) -> FlushResult:
        """Learn a batch in one transaction (the caller holds the write lock), less messages already
        learned; applied: the last learning log entry it holds (bot.core.learnlog), recorded with it."""
        columns = batch if isinstance(batch, Columns) else await asyncio.to_thread(Columns.of, batch)
        if self.bulk is not None:
            assert applied is None, "the learning log is applied before an import begins"
            return await self.bulk.learn(columns)
        learned = [0]

        async def work() -> None:
            fresh = await self.fresh(columns)
            learned[0] = len(fresh)  # a transaction run again starts over
            if len(fresh):
                await self.apply(fresh, sign=1)
            if applied is not None:
                await self._sql.execute(self._q["set_meta"], (learnlog.APPLIED_META, str(applied)))

        await self.transaction(work)
        return FlushResult(learned[0], len(columns) - learned[0])

    async def fresh(self, batch: Columns) -> Columns:
        """The batch less messages learned already, and less those whose chain or author is gone."""
        kept = await self._unknown(batch.keys)
        kept &= await self._not_orphans(batch)
        return batch.select(kept)

    async def _unknown(self, keys: Ints) -> Bools:
        """Which keys are not learned already, nor met earlier in the batch (a key's collision)."""
        # asked in key order: SQLite's lookups then walk the table's B-tree forward (a third quicker)
        rows = await self._sql.fetchall(self._q["known_message_keys"], (np.sort(keys).tolist(),))
        _, first = np.unique(keys, return_index=True)
        kept = np.zeros(len(keys), dtype=np.bool_)
        kept[first] = True
        if rows:
            kept &= ~np.isin(keys, ints([int(row[0]) for row in rows], len(rows)))
        return kept

    async def _not_orphans(self, batch: Columns) -> Bools:
        """Which messages' chain and author still exist (another process may have reset or forgotten them).

        On PostgreSQL the rows read are locked (KEY SHARE) until the transaction ends: a forget or a
        reset elsewhere waits for it, and one that went first is seen here.
        """
        kept = np.ones(len(batch), dtype=np.bool_)
        if not len(batch):
            return kept
        gone = []
        for name, wanted in (("existing_chains", batch.chains), ("existing_authors", batch.authors)):
            asked = np.unique(wanted)
            rows = await self._sql.fetchall(self._q[name], (asked.tolist(),))
            missing = np.setdiff1d(asked, ints([int(row[0]) for row in rows], len(rows)))
            gone.append(set(missing.tolist()))
            kept &= ~np.isin(wanted, missing)
        if not kept.all():
            for key, info in list(self._registry.chains.items()):  # no cache keeps naming them
                if info.id in gone[0]:
                    del self._registry.chains[key]
            for author, author_id in list(self._registry.authors.items()):
                if author_id in gone[1]:
                    del self._registry.authors[author]
            log.info(
                "dropped %d queued messages: their member was forgotten or chain reset",
                len(batch) - int(kept.sum()),
            )
        return kept

    async def claim(self, batch: Columns) -> Columns:
        """Insert the batch's message rows, less those another writer committed meanwhile (PostgreSQL):
        the ones inserted."""
        if not len(batch):
            return batch
        columns = [list(column) for column in zip(*message_rows(batch), strict=True)]
        rows = await self._sql.fetchall(self._q["claim_messages"], columns)
        return batch.select(np.isin(batch.keys, ints([int(row[0]) for row in rows], len(rows))))

    async def apply(self, batch: Columns, sign: int, claimed: bool = False) -> None:
        """Add (sign=1) or subtract (sign=-1) messages' counts, inside the open transaction (claimed: their
        message rows are in already)."""
        # the vocabulary is in the order tokens first occur: new ids follow it
        found = await self._vocabulary.resolve(batch.vocab, create=sign > 0)
        sql, q = self._sql, self._q
        # Counting (numpy, and Python around it) runs in a thread so the event loop keeps answering.
        aggregating = asyncio.to_thread(_aggregate, batch, found)
        if sign > 0 and not claimed:
            # the message rows go in meanwhile: in key order, so another writer inserting some of the
            # same keys waits, never deadlocks (PostgreSQL)
            aggregated, _ = await asyncio.gather(
                aggregating, self._insert_messages(asyncio.to_thread(message_rows, batch))
            )
        else:
            aggregated = await aggregating
        ids, counted, window_rows, refs, counters = aggregated
        if sign > 0:
            await self.counts.add(counted, len(batch), window_rows)
            if self.edit_window_days and batch.keep.any():
                # sealed in a thread too: at 3,000 msgs/s it was 31 of the event loop's 44 stalls over 15 ms
                rows = await asyncio.to_thread(_recent_rows, batch, ids, int(self.clock()), self.sealer)
                await sql.executemany(q["insert_recent"], rows)
        else:
            await self.counts.subtract(counted, window_rows)
            keys = [(key,) for key in np.sort(batch.keys).tolist()]
            await sql.executemany(q["delete_message"], keys)
            await sql.executemany(q["delete_recent"], keys)
        await self._vocabulary.add_refs({token_id: sign * n for token_id, n in refs.items()})
        chains = sorted(counters)  # rows locked in one order by every writer (PostgreSQL: no deadlock)
        await sql.executemany(
            q["add_chain_counters"], ((*(sign * v for v in counters[c]), c) for c in chains)
        )
        if sign > 0:
            now = int(self.clock())
            await sql.executemany(q["chain_learned_at"], ((now, chain_id) for chain_id in chains))
        for chain_id in chains:
            self.versions.wrote(chain_id)

    async def _insert_messages(self, rows: Awaitable[list[tuple[object, ...]]]) -> None:
        """Insert the message rows once they are made (in a thread, meanwhile)."""
        await self._sql.executemany(self._q["insert_message"], await rows)

    async def find_unmerged(self) -> None:
        """At start: the chains a run before left counts in the deltas of, to merge while idle."""
        if self.counts.merge_rows:
            rows = await self._reads.fetchall(self._q["unmerged_chains"])
            self.counts.add_unmerged({int(chain_id): int(order) for chain_id, order in rows})

    async def merge_idle(self, seconds: float) -> bool:
        """While no batch waits (the caller holds the write lock): merge deltas into blocks for up to
        seconds, in one transaction; True when no chain that learned holds counts there any more."""
        if self.bulk is not None:
            return False
        merged = [False]

        async def work() -> None:
            merged[0], changed = await self.counts.merge_idle(time.monotonic() + seconds)
            for chain_id in changed:  # the walker's caches read them again
                self.versions.wrote(chain_id)

        await self.transaction(work)
        return merged[0]

    async def unlearn(self, item: PendingMessage) -> UnlearnStatus:
        """Subtract one learned message, given its tokens; refused when they do not match."""
        status = [UnlearnStatus.NOT_LEARNED]

        async def work() -> None:
            row = await self._sql.fetchone(self._q["lock_message"], (item.key,))
            if row is None:
                status[0] = UnlearnStatus.NOT_LEARNED
                return
            if (int(row[0]), int(row[1]), int(row[2])) != (item.chain.id, item.author_id, item.fingerprint):
                status[0] = UnlearnStatus.TEXT_MISMATCH
                return
            await self.apply(Columns.of([item]), sign=-1)
            await self.removal.mark_removal([item.chain.id])
            status[0] = UnlearnStatus.UNLEARNED

        async with self.lock:
            await self.transaction(work)
        return status[0]

    async def transaction(self, work: Callable[[], Awaitable[None]], *, join_bulk: bool = False) -> None:
        """Run work in one write transaction (the caller holds the write lock).

        Whatever fails, and however (SQLite may have rolled back already, on a full disk say),
        the caches the work may have changed are dropped, so memory never describes a
        transaction the database does not hold. On PostgreSQL a deadlock (or the like, see
        bot.core.writetx) runs the whole work again, a few times. An import's open transaction is
        committed first, or (join_bulk: work that only adds what the import needs, a chain or an
        author) takes the work.
        """
        bulk = self.bulk
        if bulk is not None and join_bulk:
            await bulk.run(work)
            return
        if bulk is not None:
            await bulk.commit()  # this transaction could not begin inside the import's
        for attempt in range(1, RETRIES + 1):
            try:
                await self.begin()
                await work()
                await self.tx.commit()
                return
            except BaseException as exc:
                await self.rollback()
                if attempt == RETRIES or not self.tx.retryable(exc):
                    raise
                log.info(
                    "a write transaction met another writer's (%s); running it again", type(exc).__name__
                )
            finally:
                self._hubs.publish()

    async def begin(self) -> None:
        """Begin a write transaction, dropping the writer's caches if another connection committed meanwhile."""
        if await self.tx.begin():
            self._clear_caches()
            await self._hubs.load()

    async def rollback(self) -> None:
        """After a failed transaction: drop the caches, and roll back unless the engine did already."""
        self._drop_caches()
        await self.tx.rollback()

    def _drop_caches(self) -> None:
        """Forget everything the writer cached about the database (read again on use)."""
        self.tx.invalidate()
        self._clear_caches()

    def _clear_caches(self) -> None:
        self._vocabulary.clear()
        self._registry.chains.clear()
        self._registry.authors.clear()
        self._hubs.clear()
        self._guilds.clear()

    async def forget(
        self, platform: str, guild: str, external_id: str, forgotten: Callable[[int], None] | None = None
    ) -> ForgetResult:
        """Remove every contribution of a member to a guild's chains, in one transaction (forgotten: told
        the member's author id once it is committed)."""
        return await self.removal.forget(platform, guild, external_id, forgotten)

    async def reset(self, key: ChainKey) -> int:
        """Delete a chain entirely; returns how many learned messages it held."""
        return await self.removal.reset(key)

    async def add_chain(self, key: ChainKey, settings: GuildSettings) -> ChainInfo:
        """A new chain's row, made with the guild's order and run length (unless another process just did)."""
        return await self.registry_writes.add_chain(key, settings)

    async def add_author(
        self, platform: str, guild: str, external_id: str, *, consented: bool = False
    ) -> int | None:
        """A new author's internal id (unless another process just made it); SQLite's, as add_chain."""
        return await self.registry_writes.add_author(platform, guild, external_id, consented=consented)
