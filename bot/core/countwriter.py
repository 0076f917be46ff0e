"""Where a chain's transition and window counts go: the delta rows (the transitions,
transitions_back and windows tables) or the blocks (transition_blocks, window_blocks).

Live learning upserts into the deltas (a transition into the forward and the backward one), which
the rolling merge (bot.core.rolling) moves into the blocks a slice at a time after each batch; an
import stages each batch's counts (bot.core.staging) and merges them all into the blocks before its
transaction commits. Subtracting takes, in each direction, what its delta holds and the rest from
its blocks. The hubs (bot.core.hubcache) learn of every transition change here. Every method runs
inside the writer's open transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bot.core import blocks
from bot.core import chain as chainmod
from bot.core.blockwriter import BlockWriter
from bot.core.columns import Ints
from bot.core.counting import Counted, window_entries_by_chain, window_rows
from bot.core.hubcache import HubCache
from bot.core.rolling import TRANSITION_DELTAS, WINDOW_DELTA, Rolling
from bot.core.sqlconn import SqlConn
from bot.core.staging import Staging

MERGE_ROWS = 20_000  # a chain without blocks makes them at this many delta rows (then: bot.core.rolling)


def _by_chain(rows: Iterable[tuple[int, int, int, int]]) -> dict[int, list[tuple[int, int, int]]]:
    """(chain, fingerprint, author, count) window rows grouped by chain."""
    chains: dict[int, list[tuple[int, int, int]]] = {}
    for chain_id, fp, author_id, k in rows:
        chains.setdefault(chain_id, []).append((fp, author_id, k))
    return chains


_TRANSITION_DELTA = ("delta_count", "subtract_transition", "prune_transition")
_BACK_DELTA = ("back_delta_count", "subtract_transition_back", "prune_transition_back")
_WINDOW_DELTA = ("window_delta_count", "subtract_window", "prune_window")


class CountWriter:
    """Adds, subtracts and removes a chain's transition and window counts, in the delta or the blocks."""

    def __init__(self, sql: SqlConn, hubs: HubCache) -> None:
        self._sql = sql
        self._q = sql.statements
        self._hubs = hubs
        self._blocks = BlockWriter(sql)
        self._windows = BlockWriter(sql, blocks.WINDOWS)
        self._rolling = Rolling(sql, {blocks.TRANSITIONS: self._blocks, blocks.WINDOWS: self._windows})
        self.staging: Staging | None = None  # an import's: batches are staged, not upserted into the delta
        self._being_staged: asyncio.Future[None] | None = None  # the batch whose counts a thread stages
        self.merge_rows = MERGE_ROWS  # 0: all merged at every commit (the tests': reads meet blocks)

    async def add(self, counted: Sequence[Counted], batch_size: int, windows: Ints) -> None:
        """Learn a batch's transitions (and tell the hubs) and window fingerprints."""
        staging = self.staging
        if staging is not None:
            rows = [row for c in counted for row in self._hubs.rows_of_hubs(c)]
        else:
            # rows in key order (counting sorts them, chain first): every writer locks them in one order
            await self._sql.executemany(
                self._q["upsert_window"], window_rows(windows)
            )  # before a merge takes them
            rows, back = await asyncio.to_thread(
                lambda: (
                    [row for c in counted for row in c.rows()],
                    [row for c in counted for row in c.back_rows()],
                )
            )
            await self._sql.executemany(self._q["upsert_transition"], rows)
            await self._sql.executemany(self._q["upsert_transition_back"], back)
        deltas, seen = await self._hubs.split(rows)
        await self._hubs.add(deltas, 1)
        if staging is not None:
            # Staged in a thread while the next batch is counted; one batch at a time (Staging is not
            # thread-safe), and all of them before a merge.
            await self.staged()
            self._being_staged = asyncio.ensure_future(
                asyncio.to_thread(self._stage, staging, counted, windows)
            )
        else:
            await self._hubs.promote(seen, batch_size)
            await self._roll(counted, windows)

    async def staged(self) -> None:
        """Wait until the batch being staged is (its error, if any, raised here)."""
        pending, self._being_staged = self._being_staged, None
        if pending is not None:
            await pending

    async def drop_staged(self) -> None:
        """Drop everything staged (rolled back), once the batch being staged is (its error ignored)."""
        with contextlib.suppress(Exception):
            await self.staged()
        if self.staging is not None:
            self.staging.clear()

    @staticmethod
    def _stage(staging: Staging, counted: Sequence[Counted], windows: Ints) -> None:
        for chain_id, entries in window_entries_by_chain(windows).items():
            staging.add(blocks.WINDOWS, chain_id, 0, entries)
        for c in counted:
            staging.add(blocks.TRANSITIONS, c.chain_id, c.order, c.entries)

    async def merge_staged(self) -> None:
        """Merge what is staged into the blocks, each block rewritten once at most (then drop it)."""
        staging = self.staging
        if staging is None:
            return
        await self.staged()
        staged = staging.chains()
        if self._sql.shared:  # chains' block locks taken in one order by every writer
            staged.sort(key=lambda s: (s[0] is not blocks.TRANSITIONS, s[1]))
        # One at a time, in this order: blocks get the same ids for the same input (merged at once,
        # they took ids in the order their threads happened to finish).
        for kind, chain_id, order in staged:
            writer = self._blocks if kind is blocks.TRANSITIONS else self._windows
            wide = self._hubs.wide if kind is blocks.TRANSITIONS else 0
            for direction in kind.directions:
                runs = staging.runs(kind, chain_id, direction)
                found = await writer.merge_sorted(chain_id, order, direction, runs, wide)
                if found:  # after the hubs took the counts: a hub made here reads them whole
                    await self._hubs.make_missing(chain_id, found)
        staging.clear()

    async def subtract(self, counted: Sequence[Counted], windows: Ints) -> None:
        """Take a batch's transitions and windows away: from the delta as far as it holds them, the rest
        from the blocks."""
        left: list[tuple[int, int, int, int]] = []
        for chain_id, fp, author_id, k in window_rows(windows):
            held = await self._take(_WINDOW_DELTA, (chain_id, fp, author_id), k)
            if k > held:
                left.append((chain_id, fp, author_id, held - k))
        await self._merge_windows(_by_chain(left))
        rows = [row for c in counted for row in c.rows()]
        rest: dict[tuple[int, int], list[tuple[int, ...]]] = {}  # (chain, direction): what the blocks lose
        for chain_id, ctx, next_id, author_id, k in rows:
            held = await self._take(_TRANSITION_DELTA, (chain_id, ctx, next_id, author_id), k)
            if k > held:
                entry = (*chainmod.unpack(ctx), next_id, author_id, held - k)
                rest.setdefault((chain_id, blocks.FORWARD), []).append(entry)
        for chain_id, next_id, rotated, author_id, k in [row for c in counted for row in c.back_rows()]:
            held = await self._take(_BACK_DELTA, (chain_id, next_id, rotated, author_id), k)
            if k > held:
                tokens = chainmod.unpack(rotated)
                entry = (tokens[-1], *tokens[:-1], next_id, author_id, held - k)
                rest.setdefault((chain_id, blocks.BACKWARD), []).append(entry)
        orders = {c.chain_id: c.order for c in counted}
        for (chain_id, direction), entries in sorted(rest.items()):
            lost = np.array(entries, dtype=np.int64)
            await self._blocks.merge(chain_id, orders[chain_id], lost, directions=(direction,))
        deltas, _ = await self._hubs.split(rows)
        await self._hubs.add(deltas, -1)

    async def _take(self, statements: tuple[str, str, str], key: tuple[object, ...], k: int) -> int:
        """Take up to k from a delta row (count, subtract, prune: its statements); how much it held."""
        count, subtract, prune = (self._q[name] for name in statements)
        found = await self._sql.fetchone(
            count, key
        )  # PostgreSQL: locked, so no merge elsewhere takes it meanwhile
        held = min(k, int(found[0])) if found else 0
        if held:
            await self._sql.execute(subtract, (held, *key))
            await self._sql.execute(prune, key)
        return held

    async def forget_author(
        self, chain_id: int, order: int, author_id: int, cutter: ProcessPoolExecutor | None = None
    ) -> tuple[int, Counter[int]]:
        """Remove an author's transitions and windows from a chain: (how many transition entries, the
        token refs they held, negative). cutter: where blocks are cut (BlockWriter.drop_author)."""
        await self._sql.execute(self._q["delete_author_windows"], (chain_id, author_id))
        await self._windows.drop_author(chain_id, 0, author_id, cutter)
        found = await self._sql.fetchall(self._q["forget_author_transitions"], (chain_id, author_id))
        rows = [(bytes(x), int(n), int(k)) for x, n, k in found]
        await self._sql.execute(self._q["delete_author_transitions_back"], (chain_id, author_id))
        removed = await self._blocks.drop_author(chain_id, order, author_id, cutter)
        rows.extend(
            zip(
                blocks.ctx_blobs(removed, order),
                removed[:, order].tolist(),
                removed[:, -1].tolist(),
                strict=True,
            )
        )
        refs: Counter[int] = Counter()
        for _, n, k in rows:
            if n > chainmod.END:
                refs[n] -= k
        deltas, _ = await self._hubs.split((chain_id, x, n, author_id, k) for x, n, k in rows)
        await self._hubs.add(deltas, -1)
        return len(rows), refs

    async def drop_chain(self, chain_id: int, order: int) -> dict[int, int]:
        """Delete a chain's transitions, windows and hubs; the token refs they held (negative), by token."""
        found = await self._sql.fetchall(self._q["chain_token_refs"], (chain_id,))
        refs = {int(n): -int(k) for n, k in found}
        for n, k in (await self._blocks.token_counts(chain_id, order)).items():
            if n > chainmod.END:
                refs[n] = refs.get(n, 0) - k
        await self._blocks.drop_chain(chain_id)
        await self._windows.drop_chain(chain_id)
        for name in (
            "delete_chain_windows",
            "delete_chain_transitions",
            "delete_chain_transitions_back",
            "delete_chain_hubs",
        ):
            await self._sql.execute(self._q[name], (chain_id,))
        self._hubs.drop_chain(chain_id)
        self._rolling.forget_chain(chain_id)
        return refs

    async def _roll(self, counted: Sequence[Counted], windows: Ints) -> None:
        """After a batch, the rolling merge of its chains' deltas (transitions first, then windows: the
        order every writer takes the chains' block locks in, as merge_staged does)."""
        chains = sorted(counted, key=lambda c: c.chain_id)
        for c in chains:
            if self.merge_rows:  # else every commit swept it all
                self._rolling.unmerged[c.chain_id] = c.order
            for delta in TRANSITION_DELTAS:
                rows = len(c.entries)
                wide = await self._rolling.after_batch(
                    c.chain_id, c.order, delta, rows, self.merge_rows, self._hubs.wide
                )
                if wide:
                    await self._hubs.make_missing(c.chain_id, wide)
        added: dict[int, int] = {}
        if len(windows):
            chain_ids, counts = np.unique(windows[:, 0], return_counts=True)
            added = dict(zip(chain_ids.tolist(), counts.tolist(), strict=True))
        for c in chains:
            await self._rolling.after_batch(
                c.chain_id, 0, WINDOW_DELTA, added.get(c.chain_id, 0), self.merge_rows
            )

    @property
    def unmerged(self) -> bool:
        """Whether a chain may still hold counts in its deltas (see merge_idle)."""
        return bool(self._rolling.unmerged)

    def add_unmerged(self, chains: dict[int, int]) -> None:
        """Chains (id -> order) whose deltas hold counts, to merge while idle."""
        self._rolling.unmerged.update(chains)

    async def merge_idle(self, until: float) -> tuple[bool, list[int]]:
        """While no batch waits: merge the deltas of the chains that learned, slice after slice, until
        time.monotonic() reaches until (transitions first, then windows: the order of _roll). Returns
        whether every such chain was found merged, and the chains whose blocks changed."""
        pending = sorted(self._rolling.unmerged.items())
        done: dict[int, bool] = {chain_id: True for chain_id, _ in pending}
        changed: set[int] = set()
        for kind_deltas in (TRANSITION_DELTAS, (WINDOW_DELTA,)):
            for chain_id, order in pending:
                for delta in kind_deltas:
                    transitions = delta.kind is blocks.TRANSITIONS
                    merged, taken, wide = await self._rolling.idle(
                        chain_id,
                        order if transitions else 0,
                        delta,
                        self._hubs.wide if transitions else 0,
                        self.merge_rows,
                        until,
                    )
                    if wide:
                        await self._hubs.make_missing(chain_id, wide)
                    done[chain_id] &= merged
                    if taken:
                        changed.add(chain_id)
        for chain_id, merged in done.items():
            if merged:
                self._rolling.unmerged.pop(chain_id, None)
        return not self._rolling.unmerged, sorted(changed)

    async def _merge_windows(self, chains: dict[int, list[tuple[int, int, int]]]) -> None:
        """Add signed (fingerprint, author, count) rows of each chain to its window blocks."""
        for chain_id, rows in chains.items():
            entries = await asyncio.to_thread(blocks.window_entries, rows)
            await self._windows.merge(chain_id, 0, entries)
