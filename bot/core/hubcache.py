"""The writer's hubs: which contexts are hubs, their unpacked counts, and making new ones.

Hubs are kept unpacked across transactions, which is exact only with one writer: on PostgreSQL
(several writing processes) they are off (``enabled`` False): no hub is made, so the walker finds
none and reads every context from the blocks and the delta.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from bot.core import blocks
from bot.core import chain as chainmod
from bot.core import hubs as hubmod
from bot.core.counting import Counted, TransitionRow
from bot.core.lru import LRU
from bot.core.sqlconn import SqlConn
from bot.core.versions import ChainVersions

HubKey = tuple[int, bytes]  # (chain id, context)


def _added(
    changes: Sequence[tuple[HubKey, hubmod.Packed, Counter[int]]], sign: int
) -> list[tuple[object, ...]]:
    """Hubs' counts with their changes added (in place), as put_hub's rows."""
    rows: list[tuple[object, ...]] = []
    for key, packed, delta in changes:
        hubmod.add(packed, delta, sign)
        rows.append((*key, *hubmod.encode(*packed)))
    return rows


def by_context(
    rows: Iterable[TransitionRow], hubs: set[HubKey]
) -> tuple[dict[HubKey, Counter[int]], Counter[HubKey]]:
    """Split transition rows by context: counts per successor for hubs, occurrences of the rest."""
    deltas: dict[HubKey, Counter[int]] = {}
    seen: Counter[HubKey] = Counter()
    for chain_id, ctx, next_id, _, k in rows:
        key = (chain_id, ctx)
        if key in hubs:
            deltas.setdefault(key, Counter())[next_id] += k
        else:
            seen[key] += k
    return deltas, seen


class HubCache:
    """The hubs as the writer knows them (see bot.core.hubs); their changes tell the walker."""

    def __init__(
        self,
        sql: SqlConn,
        versions: ChainVersions,
        hub_rows: int,
        cache_size: int,
        in_memory: int,
        *,
        enabled: bool = True,
    ) -> None:
        self._sql = sql
        self._q = sql.statements
        self.enabled = enabled
        self._versions = versions
        self.hub_rows = hub_rows
        self._hubs: set[HubKey] = set()  # (chain id, context) of every hub
        self._hub_arrays: LRU[HubKey, hubmod.Packed] = LRU(in_memory)
        # Contexts counted and found narrow: how many rows each still lacked (a row per occurrence at most).
        self._hub_short: LRU[HubKey, int] = LRU(cache_size)
        self._hubs_changed = False  # in the open transaction

    @property
    def wide(self) -> int:
        """Rows from which a merge reports a context as wide (a hub to make); 0 (none) when hubs are off."""
        return self.hub_rows if self.enabled else 0

    def clear(self) -> None:
        """Forget every hub (read again at the next transaction)."""
        self._hubs = set()
        self._hub_arrays.clear()
        self._hub_short.clear()
        self._hubs_changed = True

    def drop_chain(self, chain_id: int) -> None:
        """Inside the transaction that deletes a chain: forget its hubs."""
        self._hubs = {hub for hub in self._hubs if hub[0] != chain_id}
        self._hub_arrays.clear()
        self._hubs_changed = True

    async def split(
        self, rows: Iterable[TransitionRow]
    ) -> tuple[dict[HubKey, Counter[int]], Counter[HubKey]]:
        """by_context on the current hubs, in a thread so the event loop keeps answering meanwhile."""
        if not self.enabled:
            return {}, Counter()
        return await asyncio.to_thread(by_context, rows, self._hubs)

    async def load(self) -> None:
        """Read which contexts are hubs (in a transaction whose caches were dropped)."""
        if not self.enabled:
            return
        self._hubs = {(int(c), bytes(x)) for c, x in await self._sql.fetchall(self._q["all_hubs"])}
        self._hub_arrays.clear()
        self._hubs_changed = True

    def publish(self) -> None:
        """After a commit or rollback: if hubs were made or dropped, tell the walker to look again."""
        if self._hubs_changed:
            self._hubs_changed = False
            self._versions.hubs_changed()

    async def _hub(self, key: HubKey) -> hubmod.Packed:
        packed = self._hub_arrays.get(key)
        if packed is None:
            row = await self._sql.fetchone(self._q["hub"], key)
            packed = hubmod.decode(row[0], row[1]) if row else hubmod.from_rows(())
            self._hub_arrays.put(key, packed)
        return packed

    async def add(self, deltas: dict[HubKey, Counter[int]], sign: int) -> None:
        """Add (sign=1) or subtract (sign=-1) counts per successor to hubs, and store them."""
        changes = [(key, await self._hub(key), delta) for key, delta in deltas.items()]
        if changes:  # the counting in a thread, as the rest of a batch's (the hubs are the writer's alone)
            await self._sql.executemany(self._q["put_hub"], await asyncio.to_thread(_added, changes, sign))

    async def promote(self, seen: Counter[HubKey], batch_size: int) -> None:
        """Make hubs of the batch's contexts (seen: occurrences) that now have hub_rows rows or more.

        A context found narrow is counted again only once it has occurred often enough since to
        have gained the rows it lacked. In a large batch only contexts seen twice are counted: a
        hub is common by definition, and counting every rare context would cost more than the batch.
        """
        if not self.enabled:
            return
        candidates = await asyncio.to_thread(self._candidates, seen, 1 if batch_size < 200 else 2)
        if not candidates:
            return
        await self._sql.executemany(self._q["add_hub_candidate"], candidates)
        found = await self._sql.fetchall(self._q["hub_candidate_rows"], (self.hub_rows,))
        counted = [((int(c), bytes(x)), int(n)) for c, x, n in found]
        await self._sql.execute(self._q["clear_hub_candidates"])
        for key, rows in counted:
            if rows < self.hub_rows:
                self._hub_short.put(key, self.hub_rows - rows)
                continue
            await self._make(key)
            self._hub_short.pop(key)

    def _candidates(self, seen: Counter[HubKey], least: int) -> list[HubKey]:
        """The contexts seen that may have become hubs (seen at least `least` times, or short no more)."""
        candidates = []
        for key, k in seen.items():
            if key in self._hubs:
                continue
            short = self._hub_short.get(key)
            if short is not None and short > k:
                self._hub_short.put(key, short - k)
            elif short is not None or k >= least:
                candidates.append(key)
        return candidates

    async def _make(self, key: HubKey) -> None:
        """Make a context a hub, its counts read from its blocks and delta rows."""
        chain_id, ctx = key
        order = len(ctx) // 4
        args = (chain_id, blocks.FORWARD, *blocks.prefix_range(chainmod.unpack(ctx), order))
        rows = await self._sql.fetchall(self._q["block_range"], args)
        found = blocks.from_rows([tuple(r) for r in rows], order, chainmod.unpack(ctx))
        counts: Counter[int] = Counter()
        for next_id, k in zip(found[:, order].tolist(), found[:, -1].tolist(), strict=True):
            counts[next_id] += k
        for next_id, k in await self._sql.fetchall(self._q["successors"], key):
            counts[int(next_id)] += int(k)
        packed = hubmod.from_rows(sorted(counts.items()))
        await self._sql.execute(self._q["put_hub"], (*key, *hubmod.encode(*packed)))
        self._hubs.add(key)
        self._hubs_changed = True
        self._hub_arrays.put(key, packed)

    def rows_of_hubs(self, counted: Counted) -> list[TransitionRow]:
        """The rows of a chain's batch entries whose context is a hub (to add to the hubs)."""
        contexts = [ctx for chain_id, ctx in self._hubs if chain_id == counted.chain_id]
        if not contexts:
            return []
        mine = np.isin(
            blocks.contexts(counted.entries, counted.order), np.array(contexts, dtype=f"V{4 * counted.order}")
        )
        return Counted(counted.chain_id, counted.order, counted.entries[mine]).rows()

    async def make_missing(self, chain_id: int, contexts: Sequence[bytes]) -> None:
        """Make hubs of these contexts of a chain, those not hubs yet (a merge found them wide)."""
        if not self.enabled:
            return
        for ctx in contexts:
            if (chain_id, ctx) not in self._hubs:
                await self._make((chain_id, ctx))
