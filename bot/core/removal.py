"""Removing what was learned: a member's every contribution to a guild (forget), a whole chain (reset).

Both run in one write transaction of the writer's (bot.core.writer), under the store's write lock
and scrubbing (the removed rows' bytes are zeroed, not just freed), and leave the database as if
the member or the chain had never been learned: counts subtracted (bot.core.countwriter), message
and recent rows deleted, token references released, and the removals counter bumped into the
chains' rows, so that the walker keys fresh caches for them (in any process). Writer.unlearn marks
its removal here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING

from bot.core import blockwriter, pools
from bot.core.contracts import GuildStateStore, VocabularyStore
from bot.core.countwriter import CountWriter
from bot.core.models import ChainKey, ForgetResult
from bot.core.versions import ChainVersions
from bot.core.writetx import Transaction, WriteTx

if TYPE_CHECKING:
    from bot.core.writer import AnyRegistry


#: Processes a forget cuts blocks in, where the store may start processes (its walker runs in one):
#: cutting is most of a forget's time (3.9 of 6.1 s for a member of a 1,000,000-message chain).
CUT_WORKERS = 2


class Removal:
    """Forget and reset, with the writer's collaborators (the caller does not hold the write lock)."""

    def __init__(
        self,
        tx: WriteTx,
        vocabulary: VocabularyStore,
        guilds: GuildStateStore,
        registry: AnyRegistry,
        versions: ChainVersions,
        counts: CountWriter,
        *,
        lock: asyncio.Lock,
        transaction: Transaction,
    ) -> None:
        self.tx = tx
        self.lock = lock  # the store's write lock
        self._sql = tx.sql
        self._q = tx.sql.statements
        self._vocabulary = vocabulary
        self._guilds = guilds
        self._registry = registry
        self.versions = versions  # told of every write to a chain
        self.counts = counts  # the writer's: where transition counts go
        self.transaction = transaction  # the writer's: one write transaction, caches dropped on failure
        self.cut_workers = 0  # processes a forget cuts blocks in (0: a thread of this one)

    @contextlib.asynccontextmanager
    async def _cutter(self) -> AsyncIterator[ProcessPoolExecutor | None]:
        """Where a forget cuts blocks: cut_workers spawned processes, stopped after it; None: a thread."""
        if not self.cut_workers:
            yield None
            return
        pool = ProcessPoolExecutor(self.cut_workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            yield pool
        finally:
            await asyncio.shield(asyncio.to_thread(pools.stop, pool))  # also after a process was killed

    async def mark_removal(self, chain_ids: Iterable[int]) -> None:
        """Inside a transaction that removes counts: bump the removals counter into the chains' rows."""
        row = await self._sql.fetchone(self._q["bump_removals"])
        assert row is not None, "the counters table has no removals"
        removals = int(row[0])
        await self._sql.executemany(self._q["mark_removal"], ((removals, c) for c in sorted(chain_ids)))

    async def forget(
        self, platform: str, guild: str, external_id: str, forgotten: Callable[[int], None] | None = None
    ) -> ForgetResult:
        """Remove every contribution of a member to a guild's chains and their consent, in one transaction;
        forgotten: told the member's author id once it is committed."""
        totals = [0, 0, 0]
        removed: list[int] = []
        changed: list[int] = []  # the chains something was removed from
        sql, q = self._sql, self._q

        async def work() -> None:
            totals[:] = [0, 0, 0]
            removed.clear()
            changed.clear()
            # First the consent: from here no author is made for the member's messages on their way
            # (add_author, consented), so each is learned before the forget, and removed, or never.
            await sql.execute(q["remove_consent"], (platform, guild, external_id))
            row = await sql.fetchone(q["author_by_key"], (platform, guild, external_id))
            if row is None:
                return
            author_id = int(row[0])
            removed[:] = [author_id]
            # Then: a learner elsewhere that read the author waits for this (PostgreSQL), or went first.
            await sql.execute(q["lock_author"], (author_id,))
            refs: Counter[int] = Counter()
            rows = await sql.fetchall(q["author_message_totals"], (author_id,))
            learned = {int(row[0]): tuple(int(v) for v in row[1:]) for row in rows}
            # The chains the member has a message row in (an author is of one guild): only they hold
            # the member's counts, as every message counted has its row, written with it; and those
            # where migration 0013 found rows missing.
            incomplete = await sql.fetchall(q["incomplete_chains_of_guild"], (platform, guild))
            scanned = sorted(learned.keys() | {int(row[0]) for row in incomplete})
            if cutter is not None and scanned:  # its processes start (and import) while the rows go
                pools.start(cutter, self.cut_workers, blockwriter.ready)
            # The member's message and recent rows first, while the cutting processes start.
            await sql.execute(q["delete_author_messages"], (author_id,))
            await sql.execute(q["delete_author_recent"], (author_id,))
            for chain_id in scanned:
                n_messages, n_tokens, n_chars, n_bytes = learned.get(chain_id, (0, 0, 0, 0))
                info = await self._registry.chain_by_id(chain_id)
                entries, taken = await self.counts.forget_author(chain_id, info.order, author_id, cutter)
                if not n_messages and not entries:
                    continue
                refs.update(taken)
                await sql.execute(
                    q["add_chain_counters"], (-n_messages, -n_tokens, -n_chars, -n_bytes, chain_id)
                )
                self.versions.wrote(chain_id)
                changed.append(chain_id)
                totals[0] += n_messages
                totals[1] += n_tokens
                totals[2] += 1
            await self._vocabulary.add_refs(dict(refs))
            await sql.execute(q["delete_author"], (author_id,))
            await self.mark_removal(changed)

        async with self._cutter() as cutter, self.lock, self.tx.scrubbing():  # rows zeroed, not just freed
            await self.transaction(work)
        self._registry.authors.pop((platform, guild, external_id), None)
        self._guilds.drop_member(platform, guild, external_id)
        if forgotten is not None:
            for author_id in removed:
                forgotten(author_id)
        return ForgetResult(*totals)

    async def reset(self, key: ChainKey) -> int:
        """Delete a chain entirely; returns how many learned messages it held."""
        info = await self._registry.find_chain(key)
        if info is None:
            return 0
        held = [0]
        sql, q = self._sql, self._q

        async def work() -> None:
            # First: a learner elsewhere that read the chain waits for this (PostgreSQL), or went first.
            await sql.execute(q["lock_chain"], (info.id,))
            row = await sql.fetchone(q["chain_counters"], (info.id,))
            held[0] = int(row[0]) if row else 0
            refs = await self.counts.drop_chain(info.id, info.order)
            for name in ("delete_chain_messages", "delete_chain_recent", "delete_chain"):
                await sql.execute(q[name], (info.id,))
            await self._vocabulary.add_refs(refs)
            await self.mark_removal(())  # a chain made later with this id starts past its last value

        async with self.lock, self.tx.scrubbing():
            await self.transaction(work)
        self._registry.chains.pop(key, None)
        self.versions.wrote(info.id)
        return held[0]
