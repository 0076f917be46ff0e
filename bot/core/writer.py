"""The writer: batches applied in one transaction each, forget, reset, unlearn, pruning, new chains and authors."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from bot.core import chain as chainmod
from bot.core import counting, fingerprints
from bot.core.connections import Connections, scrubbing, take_ids
from bot.core.countwriter import CountWriter
from bot.core.guildstate import GuildState
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
from bot.core.schema import StoreError
from bot.core.sealed import Sealer
from bot.core.sql import Q
from bot.core.staging import Staging
from bot.core.versions import ChainVersions
from bot.core.vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class _Bulk:
    """An import's transaction, shared by its batches."""

    staged_bytes: int  # staged counts from which it commits ...
    seconds: float  # ... or time open from which it does
    opened: float = 0.0  # when it began (time.monotonic)
    open: bool = False
    failed: str | None = None  # why it was rolled back (then every later batch is refused)
    chains: set[int] = field(default_factory=set)  # chains it wrote to


def _aggregate(
    batch: Sequence[PendingMessage], ids: dict[str, int]
) -> tuple[
    list[counting.Counted],
    counting.Ints,
    dict[int, int],
    dict[int, list[int]],
]:
    """Count a batch: transitions per chain, window rows (both sorted by key), token refs, chain counters.

    Sorted rows make each statement walk its B-tree in key order (2x faster than random order).
    """
    trans, refs = counting.count(batch, ids)
    counters: dict[int, list[int]] = {}
    for item in batch:
        c = counters.setdefault(item.chain.id, [0, 0, 0, 0])
        c[0] += 1
        c[1] += len(item.tokens)
        c[2] += item.chars
        c[3] += item.bytes
    return trans, counting.windows(batch), refs, counters


def message_rows(batch: Sequence[PendingMessage]) -> Iterator[tuple[object, ...]]:
    """The messages table's row of each message of a batch."""
    for i in batch:
        yield (
            i.key,
            i.chain.id,
            i.author_id,
            i.fingerprint,
            i.normal,
            len(i.tokens),
            i.chars,
            i.bytes,
        )


def _pack_tokens(tokens: Sequence[str], ids: dict[str, int]) -> bytes:
    """A message's token ids, packed as stored in recent_messages."""
    return chainmod.pack([ids[t] for t in tokens])


def _recent_rows(
    batch: Sequence[PendingMessage], ids: dict[str, int], now: int, sealer: Sealer
) -> Iterator[tuple[object, ...]]:
    """The recent_messages row of each message of a batch kept for the edit window."""
    for i in batch:
        if i.keep:
            yield i.key, i.chain.id, i.author_id, now, sealer.seal(i.key, _pack_tokens(i.tokens, ids))


class Writer:
    """Every write transaction of the store (the caller holds the write lock, or the method takes it)."""

    def __init__(
        self,
        db: Connections,
        vocabulary: Vocabulary,
        hubs: HubCache,
        guilds: GuildState,
        registry: Registry,
        versions: ChainVersions,
        *,
        edit_window_days: int,
        clock: Callable[[], float],
        prune_seconds: float,
        prune_rows: int,
    ) -> None:
        self._db = db
        self._vocabulary = vocabulary
        self._hubs = hubs
        self._guilds = guilds
        self._registry = registry
        self._versions = versions  # told of every write to a chain
        self.edit_window_days = edit_window_days
        self.clock = clock  # unix seconds: when a message was learned, and when its row expires
        self._prune_seconds = prune_seconds
        self._prune_rows = prune_rows
        self._next_prune = -math.inf
        # The writer's caches describe the file as of data_version (None: drop them at the next
        # transaction, e.g. after one failed); another connection's commit changes it.
        self._data_version: int | None = None
        self._sealer: Sealer | None = None  # seals recent messages, once the store has its key
        self.counts = CountWriter(db, hubs)  # where transition counts go: the delta or the blocks
        self._bulk: _Bulk | None = None  # an import's: batches share a transaction, counts staged

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
        return self._bulk is None and self.clock() >= self._next_prune

    def begin_bulk(self, staged_bytes: int, seconds: float) -> None:
        """From now, batches share one transaction, their counts staged, committed once the staged
        counts reach staged_bytes (see bot.core.staging) or it has been open for seconds, and at end_bulk."""
        self._bulk = _Bulk(staged_bytes, seconds)
        self.counts.staging = Staging()

    @property
    def bulk_failed(self) -> bool:
        """True when an import's transaction was rolled back with batches in it (the import must stop)."""
        return self._bulk is not None and self._bulk.failed is not None

    async def end_bulk(self) -> None:
        """Commit the open bulk transaction, if any (the caller holds the write lock), and leave bulk mode."""
        try:
            await self._commit_bulk()
        finally:
            self._bulk = None
            self.counts.staging = None

    async def prune(self) -> None:
        """Drop recent messages learned before the window, in one bounded transaction (write lock held)."""
        now = self.clock()
        cutoff = now - self.edit_window_days * 86_400 if self.edit_window_days else math.inf
        dropped = [0]
        async with self._db.w.execute(Q["recent_expired"], (cutoff,)) as cur:
            expired = await cur.fetchone() is not None
        if not expired:  # the usual case: no write transaction (and none on a read-only file)
            self._next_prune = now + self._prune_seconds
            return

        async def work() -> None:
            async with self._db.w.execute(Q["prune_recent"], (cutoff, self._prune_rows)) as cur:
                dropped[0] = cur.rowcount

        await self._transaction(work)
        # A full prune leaves more behind: go on at the next flush rather than in a minute.
        self._next_prune = now if dropped[0] >= self._prune_rows else now + self._prune_seconds
        if dropped[0]:
            log.debug("dropped %d recent messages past the %d-day window", dropped[0], self.edit_window_days)

    async def commit(self, batch: Sequence[PendingMessage]) -> FlushResult:
        """Learn a batch in one transaction (the caller holds the write lock), less messages already learned."""
        if self._bulk is not None:
            return await self._commit_in_bulk(self._bulk, batch)
        fresh: list[PendingMessage] = []

        async def work() -> None:
            fresh.extend(await self._drop_orphans(await self._drop_known(batch)))
            if fresh:
                await self._apply(fresh, sign=1)

        await self._transaction(work)
        return FlushResult(len(fresh), len(batch) - len(fresh))

    async def _commit_in_bulk(self, bulk: _Bulk, batch: Sequence[PendingMessage]) -> FlushResult:
        """Learn a batch in the open bulk transaction (begun if none is); commit it once enough is staged."""
        if (
            bulk.failed is not None
        ):  # what the failed transaction held is gone: learning more would leave a gap
            raise StoreError(f"the import stopped: {bulk.failed}")
        try:
            await self._open_bulk(bulk)
            fresh = await self._drop_orphans(await self._drop_known(batch))
            if fresh:
                await self._apply(fresh, sign=1)
                bulk.chains.update(item.chain.id for item in fresh)
        except BaseException as exc:
            await self._abandon_bulk(bulk, exc)
            raise
        staged = self.counts.staging.nbytes if self.counts.staging is not None else 0
        if staged >= bulk.staged_bytes or time.monotonic() - bulk.opened >= bulk.seconds:
            await self._commit_bulk()
        return FlushResult(len(fresh), len(batch) - len(fresh))

    async def _open_bulk(self, bulk: _Bulk) -> None:
        """Begin the import's transaction, unless it is open."""
        if bulk.failed is not None:  # what it held is gone: learning more would leave a gap
            raise StoreError(f"the import stopped: {bulk.failed}")
        if not bulk.open:
            await self._db.w.execute("BEGIN IMMEDIATE")
            bulk.open, bulk.opened = True, time.monotonic()
            await self._revalidate()

    async def _commit_bulk(self) -> None:
        """Merge what the open bulk transaction staged into the blocks, and commit it."""
        bulk = self._bulk
        if bulk is None or not bulk.open:
            return
        try:
            await self.counts.merge_staged()
            await self._db.w.execute("COMMIT")
        except BaseException as exc:
            await self._abandon_bulk(bulk, exc)
            raise
        bulk.open = False
        for chain_id in bulk.chains:  # the walker's caches read the chains again
            self._versions.wrote(chain_id)
        bulk.chains.clear()
        self._hubs.publish()

    async def _abandon_bulk(self, bulk: _Bulk, exc: BaseException) -> None:
        """After a bulk transaction failed: roll it back, drop every cache, and refuse further batches
        (when it held any: a transaction that failed to begin lost nothing)."""
        if bulk.open and bulk.failed is None:
            bulk.failed = str(exc) or type(exc).__name__
        bulk.open = False
        if self.counts.staging is not None:
            self.counts.staging.clear()
        await self._rollback()
        self._hubs.publish()

    async def _drop_known(self, batch: Sequence[PendingMessage]) -> list[PendingMessage]:
        """The batch less messages whose key is learned already, or met earlier in the batch (a key's collision)."""
        keys = [item.key for item in batch]
        async with self._db.w.execute(Q["known_message_keys"], (json.dumps(keys),)) as cur:
            known = {int(row[0]) for row in await cur.fetchall()}
        fresh = []
        for key, item in zip(keys, batch, strict=True):
            if key not in known:
                known.add(key)
                fresh.append(item)
        return fresh

    async def _drop_orphans(self, batch: list[PendingMessage]) -> list[PendingMessage]:
        """Messages whose chain and author still exist (another process may have reset or forgotten them)."""
        if not batch:
            return batch
        present = []
        for name, wanted in (
            ("existing_chains", {item.chain.id for item in batch}),
            ("existing_authors", {item.author_id for item in batch}),
        ):
            async with self._db.w.execute(Q[name], (json.dumps(sorted(wanted)),)) as cur:
                present.append({int(row[0]) for row in await cur.fetchall()})
        kept = [item for item in batch if item.chain.id in present[0] and item.author_id in present[1]]
        if len(kept) < len(batch):
            log.info(
                "dropped %d queued messages: their member was forgotten or chain reset",
                len(batch) - len(kept),
            )
        return kept

    async def _apply(self, batch: Sequence[PendingMessage], sign: int) -> None:
        """Add (sign=1) or subtract (sign=-1) messages' counts, inside the open transaction."""
        ids = await self._vocabulary.resolve((t for item in batch for t in item.tokens), create=sign > 0)
        # Counting (numpy, and Python around it) runs in a thread so the event loop keeps answering.
        counted, window_rows, refs, counters = await asyncio.to_thread(_aggregate, batch, ids)
        w = self._db.w
        if sign > 0:
            await self.counts.add(counted, len(batch), window_rows)
            await w.executemany(Q["insert_message"], message_rows(batch))
            if self.edit_window_days:
                rows = _recent_rows(batch, ids, int(self.clock()), self.sealer)
                await w.executemany(Q["insert_recent"], rows)
        else:
            await self.counts.subtract(counted, window_rows)
            keys = [(i.key,) for i in batch]
            await w.executemany(Q["delete_message"], keys)
            await w.executemany(Q["delete_recent"], keys)
        await self._vocabulary.add_refs({token_id: sign * n for token_id, n in refs.items()})
        await w.executemany(
            Q["add_chain_counters"], ((*(sign * v for v in c), chain_id) for chain_id, c in counters.items())
        )
        if sign > 0:
            now = int(self.clock())
            await w.executemany(Q["chain_learned_at"], ((now, chain_id) for chain_id in counters))
        for chain_id in counters:
            self._versions.wrote(chain_id)

    async def unlearn(self, item: PendingMessage) -> UnlearnStatus:
        """Subtract one learned message, given its tokens; refused when they do not match."""
        async with self._db.write_lock:
            async with self._db.w.execute(Q["message_by_key"], (item.key,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return UnlearnStatus.NOT_LEARNED
            if (int(row[0]), int(row[1]), int(row[2])) != (item.chain.id, item.author_id, item.fingerprint):
                return UnlearnStatus.TEXT_MISMATCH

            async def work() -> None:
                await self._apply([item], sign=-1)
                await self._mark_removal([item.chain.id])

            await self._transaction(work)
        return UnlearnStatus.UNLEARNED

    async def _transaction(self, work: Callable[[], Awaitable[None]], *, join_bulk: bool = False) -> None:
        """Run work in one write transaction (the caller holds the write lock).

        Whatever fails, and however (SQLite may have rolled back already, on a full disk say),
        the caches the work may have changed are dropped, so memory never describes a
        transaction the file does not hold. An import's open transaction is committed first, or
        (join_bulk: work that only adds what the import needs, a chain or an author) takes the work.
        """
        bulk = self._bulk
        if bulk is not None and join_bulk:
            try:
                await self._open_bulk(bulk)
                await work()
            except BaseException as exc:
                await self._abandon_bulk(bulk, exc)
                raise
            return
        await self._commit_bulk()  # this transaction could not begin inside the import's
        try:
            await self._db.w.execute("BEGIN IMMEDIATE")
            await self._revalidate()
            await work()
            await self._db.w.execute("COMMIT")
        except BaseException:
            await self._rollback()
            raise
        finally:
            self._hubs.publish()

    async def _rollback(self) -> None:
        """After a failed transaction: drop the caches, and roll back unless SQLite did already."""
        self._drop_caches()
        try:
            if self._db.w.in_transaction:
                await self._db.w.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback failed (%s); the next transaction reads the file again", exc)

    async def _revalidate(self) -> None:
        """At the start of a write transaction: drop the writer's caches if another connection committed."""
        async with self._db.w.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else -1
        if version != self._data_version:
            self._drop_caches()
            await self._hubs.load()
            self._data_version = version

    def _drop_caches(self) -> None:
        """Forget everything the writer cached about the file (read again on use)."""
        self._data_version = None
        self._vocabulary.clear()
        self._registry.chains.clear()
        self._registry.authors.clear()
        self._hubs.clear()
        self._guilds.clear()

    async def _mark_removal(self, chain_ids: Iterable[int]) -> None:
        """Inside a transaction that removes counts: bump the removals counter into the chains' rows."""
        async with self._db.w.execute(Q["bump_removals"]) as cur:
            row = await cur.fetchone()
        assert row is not None, "the counters table has no removals"
        await self._db.w.executemany(Q["mark_removal"], ((int(row[0]), chain_id) for chain_id in chain_ids))

    async def forget(self, platform: str, guild: str, external_id: str) -> ForgetResult:
        """Remove every contribution of a member to a guild's chains, in one transaction."""
        author_id = await self._registry.find_author(platform, guild, external_id)
        chains = await self._registry.chains_of_guild(platform, guild)
        totals = [0, 0, 0]

        async def work() -> None:
            if author_id is None:
                return
            refs: Counter[int] = Counter()
            async with self._db.w.execute(Q["author_message_totals"], (author_id,)) as cur:
                learned = {int(row[0]): tuple(int(v) for v in row[1:]) for row in await cur.fetchall()}
            for chain_id in chains:
                n_messages, n_tokens, n_chars, n_bytes = learned.get(chain_id, (0, 0, 0, 0))
                info = await self._registry.chain_by_id(chain_id)
                entries, taken = await self.counts.forget_author(chain_id, info.order, author_id)
                if not n_messages and not entries:
                    continue
                refs.update(taken)
                await self._db.w.execute(
                    Q["add_chain_counters"], (-n_messages, -n_tokens, -n_chars, -n_bytes, chain_id)
                )
                self._versions.wrote(chain_id)
                totals[0] += n_messages
                totals[1] += n_tokens
                totals[2] += 1
            await self._vocabulary.add_refs(dict(refs))
            await self._db.w.execute(Q["delete_author_messages"], (author_id,))
            await self._db.w.execute(Q["delete_author_recent"], (author_id,))
            await self._db.w.execute(Q["delete_author"], (author_id,))
            await self._db.w.execute(Q["remove_consent"], (platform, guild, external_id))
            await self._mark_removal(chains)

        async with self._db.write_lock, scrubbing(self._db.w):  # the member's rows zeroed, not just freed
            await self._transaction(work)
        self._registry.authors.pop((platform, guild, external_id), None)
        self._guilds.drop_member(platform, guild, external_id)
        return ForgetResult(*totals)

    async def reset(self, key: ChainKey) -> int:
        """Delete a chain entirely; returns how many learned messages it held."""
        info = await self._registry.find_chain(key)
        if info is None:
            return 0
        held = [0]

        async def work() -> None:
            async with self._db.w.execute(Q["chain_counters"], (info.id,)) as cur:
                row = await cur.fetchone()
            held[0] = int(row[0]) if row else 0
            refs = await self.counts.drop_chain(info.id, info.order)
            for name in (
                "delete_chain_messages",
                "delete_chain_recent",
                "delete_chain",
            ):
                await self._db.w.execute(Q[name], (info.id,))
            await self._vocabulary.add_refs(refs)
            await self._mark_removal(())  # a chain made later with this id starts past its last value

        async with self._db.write_lock, scrubbing(self._db.w):
            await self._transaction(work)
        self._registry.chains.pop(key, None)
        self._versions.wrote(info.id)
        return held[0]

    async def add_chain(self, key: ChainKey, settings: GuildSettings) -> ChainInfo:
        """A new chain's row, made with the guild's order and run length (unless another process just did)."""
        found: list[ChainInfo] = []

        async def work() -> None:
            async with self._db.w.execute(Q["chain_by_key"], (key.platform, key.guild, key.channel)) as cur:
                row = await cur.fetchone()
            if row is None:
                chain_id = await take_ids(self._db.w, "next_chain_id", 1)
                scheme = fingerprints.CURRENT
                await self._db.w.execute(
                    Q["insert_chain"],
                    (
                        chain_id,
                        key.platform,
                        key.guild,
                        key.channel,
                        settings.order,
                        settings.run_length,
                        scheme,
                    ),
                )
                found.append(ChainInfo(chain_id, settings.order, settings.run_length, scheme))
            else:
                found.append(ChainInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3])))

        async with self._db.write_lock:
            await self._transaction(work, join_bulk=True)
            self._registry.chains[key] = found[0]
        return found[0]

    async def add_author(self, platform: str, guild: str, external_id: str) -> int:
        """A new author's internal id (unless another process just made it)."""
        key = (platform, guild, external_id)
        made: list[int] = []

        async def work() -> None:
            async with self._db.w.execute(Q["author_by_key"], key) as cur:
                row = await cur.fetchone()
            if row is None:
                author_id = await take_ids(self._db.w, "next_author_id", 1)
                await self._db.w.execute(Q["insert_author"], (author_id, *key))
                made.append(author_id)
            else:
                made.append(int(row[0]))

        async with self._db.write_lock:
            await self._transaction(work, join_bulk=True)
            self._registry.authors[key] = made[0]
        return made[0]
