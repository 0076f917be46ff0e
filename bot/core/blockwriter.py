"""The writer's side of blocks (bot.core.blocks): merging counts in, dropping an author or a chain.

Every method runs inside the writer's open transaction, on its connection, through the SQL seam
(bot.core.sqlconn): the same code on SQLite and PostgreSQL. A merge reads only the blocks its
entries fall in, a window of them at a time, and writes them back re-cut: the numpy work runs in
a thread so the event loop keeps answering meanwhile. Where other processes write the same
database (PostgreSQL), a method first takes a transaction-level lock on the chain's blocks of its
kind, so two writers never re-cut the same blocks from the same old copy.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bot.core import blocks, heap, pools, sqlconn, staging
from bot.core.blocks import BACKWARD, FORWARD, TRANSITIONS, Entries, Kind
from bot.core.connections import Connections
from bot.core.sqlconn import SqlConn
from bot.core.staging import Chunk

WINDOW = 64  # blocks re-cut together at most (bounds the memory and the sort of one merge step)
SCAN_WINDOW = 512  # blocks read at once when every block is visited (a forget)
CUTS_AHEAD = 2  # windows of a forget being cut while the next one is read (one per worker)


def _recut(
    old: Entries, part: Entries, order: int, wide: int
) -> tuple[list[tuple[bytes, int, bytes]], list[bytes]]:
    """Old blocks' entries (concatenated) and a signed change to them, merged and cut again:
    (first, entries, data) rows, and (forward) the contexts with `wide` entries or more among them."""
    merged = blocks.summed(np.concatenate([old, part]))
    rows = blocks.encode_chunks(merged)
    if not wide or not len(merged):
        return rows, []
    context = merged[:, :order]  # forward entries sort by context: each context's entries are a run
    starts = np.flatnonzero(np.r_[True, np.any(context[1:] != context[:-1], axis=1)])
    lengths = np.diff(np.r_[starts, len(merged)])
    return rows, blocks.ctx_blobs(merged[starts[lengths >= wide]], order)


def _change(forward: Entries, order: int, direction: int) -> Entries:
    """Signed counts to merge, in a direction's key order."""
    return blocks.summed(blocks.to_direction(forward, order, direction), signed=True)


#: Blocks without an author's entries, each where it was: its (first key, entries, data) anew, or
#: None where it held none of them (entries 0: none are left); and the author's entries.
Cut = tuple[list[tuple[bytes, int, bytes] | None], Entries]


def ready() -> None:
    """A forget's cutting process's first task (pools.start): this module imported, freed memory kept."""
    heap.keep_freed()


def _without_author(rows: list[bytes], author_id: int) -> Cut:
    """Blocks (in key order) without an author's entries, and those entries. Each block keeps its
    place (no entry moves to another block), so that a forget may write them in place."""
    entries, sizes = blocks.decode_many(rows)
    mine = entries[:, -2] == author_id
    held = np.add.reduceat(mine.astype(np.int64), np.r_[0, np.cumsum(sizes)[:-1]])
    left = sizes - held
    packed = left[(held > 0) & (left > 0)]  # the blocks written anew
    kept = ~mine & np.repeat(held > 0, sizes)
    made = iter(blocks.encode_cut(entries[kept], np.r_[0, np.cumsum(packed)].tolist()))
    cut = [None if not h else next(made) if n else (b"", 0, b"") for h, n in zip(held, left, strict=True)]
    return cut, entries[mine]


_STATEMENTS = (
    "block_index",
    "block_slice",
    "block_data",
    "delete_block",
    "insert_block",
    "delete_chain_blocks",
)
_VERSIONED = ("take_version", "set_version")  # kinds whose chains carry a version (windows)
_IN_PLACE = ("update_block", "update_block_data")  # kinds whose blocks a forget rewrites in place
_SHARED = ("lock_blocks",)  # engines where other processes write too (PostgreSQL)


class BlockWriter:
    """Writes a chain's blocks of one kind (transitions or windows) inside the writer's transaction.

    db: the store's SQLite connections (the writer's), or any engine's SQL seam.
    """

    def __init__(self, db: Connections | SqlConn, kind: Kind = TRANSITIONS) -> None:
        self._sql = sqlconn.of(db)
        self._kind = kind
        names = [
            *_STATEMENTS,
            *(_VERSIONED if kind.versioned else ()),
            *(_IN_PLACE if kind.in_place else ()),
            *(_SHARED if self._sql.shared else ()),
        ]
        self._q = {name: self._sql.statements[kind.statements + name] for name in names}

    async def _begin(self, chain_id: int) -> None:
        """Before touching a chain's blocks: inside a transaction, and (shared) holding its lock."""
        if not self._sql.in_transaction:
            raise RuntimeError("blocks are written only inside the writer's open transaction")
        if self._sql.shared:
            # held until the transaction ends; taking it again there is free, so no bookkeeping of ends
            await self._sql.execute(self._q["lock_blocks"], (chain_id,))

    async def _index(self, chain_id: int, direction: int) -> tuple[list[int], list[bytes]]:
        rows = await self._sql.fetchall(self._q["block_index"], (chain_id, direction))
        return [int(r[0]) for r in rows], [bytes(r[1]) for r in rows]

    async def _data(self, ids: list[int]) -> Entries:
        """The entries of blocks, concatenated in key order."""
        rows = await self._sql.fetchall(self._q["block_data"], (ids,))
        return (await asyncio.to_thread(blocks.decode_many, [bytes(r[0]) for r in rows]))[0]

    async def _replace(
        self, chain_id: int, direction: int, ids: list[int], rows: list[tuple[bytes, int, bytes]]
    ) -> None:
        await self._sql.executemany(self._q["delete_block"], ((i,) for i in ids))
        await self._sql.executemany(
            self._q["insert_block"], ((chain_id, direction, first, n, data) for first, n, data in rows)
        )
        await self._changed(chain_id)

    async def _changed(self, chain_id: int) -> None:
        """After a change to a chain's blocks: a new version, when the kind keeps them (readers cache by it)."""
        if self._kind.versioned:
            row = await self._sql.fetchone(self._q["take_version"])
            assert row is not None, "the version counter is missing"
            await self._sql.execute(self._q["set_version"], (int(row[0]), chain_id))

    async def merge(
        self,
        chain_id: int,
        order: int,
        forward: Entries,
        wide: int = 0,
        directions: Sequence[int] | None = None,
    ) -> list[bytes]:
        """Add signed counts (forward column order, any order of rows) to a chain's blocks, in each
        direction (or those given).

        Returns the contexts found with `wide` entries or more in the blocks rewritten (0: none), for hubs.
        """
        found: list[bytes] = []
        if not len(forward):
            return found
        await self._begin(chain_id)
        for direction in self._kind.directions if directions is None else directions:
            change = await asyncio.to_thread(_change, forward, order, direction)
            if len(change):
                ids, firsts = await self._index(chain_id, direction)
                found += await self.merge_slice(chain_id, order, direction, ids, firsts, change, wide)
        return found

    async def slice(self, chain_id: int, direction: int, key: bytes, n: int) -> list[tuple[int, bytes, int]]:
        """(id, first key, entries) of up to n blocks in key order, from the one that holds key on."""
        await self._begin(chain_id)
        rows = await self._sql.fetchall(self._q["block_slice"], (chain_id, direction, key, n))
        return [(int(i), bytes(first), int(entries)) for i, first, entries in rows]

    async def merge_sorted(
        self, chain_id: int, order: int, direction: int, runs: Sequence[Sequence[Chunk]], wide: int = 0
    ) -> list[bytes]:
        """Merge staged runs (bot.core.staging) into a chain's blocks of one direction, in one pass in
        key order, a part at a time: each block is rewritten once (the one a part's end falls in, twice).
        Returns the wide contexts, as merge does."""
        await self._begin(chain_id)
        ids, firsts = await self._index(chain_id, direction)
        existed = bool(ids)  # else the parts, disjoint and in order, only add blocks
        group = order if direction == FORWARD and wide else 0
        parts = staging.merged_parts(runs, group, staging.PART_ENTRIES)
        found: list[bytes] = []
        coming = asyncio.ensure_future(asyncio.to_thread(next, parts, None))
        first = True
        while (change := await coming) is not None:
            # the next part is merged (numpy, in a thread) while this one is packed and written
            coming = asyncio.ensure_future(asyncio.to_thread(next, parts, None))
            try:
                if existed and not first:  # the part before rewrote the block this one may start in
                    ids, firsts = await self._index(chain_id, direction)
                first = False
                found += await self.merge_slice(chain_id, order, direction, ids, firsts, change, wide)
            except BaseException:
                await asyncio.gather(coming, return_exceptions=True)  # the generator is not left running
                raise
        return found

    async def merge_slice(
        self,
        chain_id: int,
        order: int,
        direction: int,
        ids: list[int],
        firsts: list[bytes],
        change: Entries,
        wide: int,
    ) -> list[bytes]:
        """Merge a sorted change (a direction's column order) into the consecutive blocks that own all
        of it (ids, firsts: their index before any of it, as _index or slice gave it; none: the chain
        has no blocks yet); the contexts found with `wide` entries or more (see merge)."""
        await self._begin(chain_id)
        threshold = wide if direction == FORWARD else 0
        if not ids:
            rows, contexts = await asyncio.to_thread(_recut, change[:0], change, order, threshold)
            await self._replace(chain_id, direction, [], rows)
            return contexts
        found: list[bytes] = []
        owner = await asyncio.to_thread(blocks.owners, firsts, change)
        for run in blocks.runs(owner):
            for lo in range(0, len(run), WINDOW):
                window = run[lo : lo + WINDOW]
                first, last = int(window[0]), int(window[-1])
                # owner is sorted (change is): the window's part is a slice, not a mask of all of it
                lo_at, hi_at = np.searchsorted(owner, [first, last + 1])
                part = change[lo_at:hi_at]
                taken = [ids[i] for i in window.tolist()]
                old = await self._data(taken)
                rows, contexts = await asyncio.to_thread(_recut, old, part, order, threshold)
                await self._replace(chain_id, direction, taken, rows)
                found.extend(contexts)
        return found

    async def drop_author(
        self, chain_id: int, order: int, author_id: int, cutter: ProcessPoolExecutor | None = None
    ) -> Entries:
        """Remove an author's entries from a chain's blocks; returns them (forward column order).

        Every block is read, a window at a time, and those that held the author's entries are
        packed again without them, each where it was (_without_author): by cutter (a process pool:
        in parallel, while the next windows are read), else in a thread; written in window order.
        """
        removed: list[Entries] = []
        await self._begin(chain_id)
        loop = asyncio.get_running_loop()
        cutting: deque[tuple[int, list[int], list[bytes], asyncio.Future[Cut]]] = deque()
        try:
            for direction in self._kind.directions:
                ids, firsts = await self._index(chain_id, direction)
                for lo in range(0, len(ids), SCAN_WINDOW):
                    taken = ids[lo : lo + SCAN_WINDOW]
                    found = await self._sql.fetchall(self._q["block_data"], (taken,))
                    rows = [bytes(data) for (data,) in found]  # in key order (ids are not)
                    cut = (
                        loop.run_in_executor(None, _without_author, rows, author_id)
                        if cutter is None
                        else pools.run(loop, cutter, _without_author, rows, author_id)
                    )
                    cutting.append((direction, taken, firsts[lo : lo + SCAN_WINDOW], cut))
                    if len(cutting) > CUTS_AHEAD:
                        await self._write_cut(chain_id, removed, *cutting.popleft())
            while cutting:
                await self._write_cut(chain_id, removed, *cutting.popleft())
        finally:
            await asyncio.gather(*(cut for *_, cut in cutting), return_exceptions=True)
        return np.concatenate(removed) if removed else np.empty((0, self._kind.width(order)), dtype=np.int64)

    async def _write_cut(
        self,
        chain_id: int,
        removed: list[Entries],
        direction: int,
        taken: list[int],
        firsts: list[bytes],
        cut: asyncio.Future[Cut],
    ) -> None:
        """Write the blocks of a window that held an author's entries without them (drop_author): in
        place where the kind allows it (half the pages written; the key's index is touched only for a
        block whose first entry went), else as new rows; a block left empty is deleted."""
        made, theirs = await cut
        changed = [
            (i, old, block) for i, old, block in zip(taken, firsts, made, strict=True) if block is not None
        ]
        if not changed:
            return
        if self._kind.in_place:
            gone = [(i,) for i, _, (_, n, _) in changed if not n]
            kept = [(n, data, i) for i, old, (first, n, data) in changed if n and first == old]
            moved = [(first, n, data, i) for i, old, (first, n, data) in changed if n and first != old]
            await self._sql.executemany(self._q["update_block_data"], kept)
            await self._sql.executemany(self._q["update_block"], moved)
            await self._sql.executemany(self._q["delete_block"], gone)
            await self._changed(chain_id)
        else:
            rows = [block for _, _, block in changed if block[1]]
            await self._replace(chain_id, direction, [i for i, _, _ in changed], rows)
        if direction == FORWARD:
            removed.append(theirs)

    async def token_counts(self, chain_id: int, order: int) -> dict[int, int]:
        """Count of each next token over a chain's transition blocks (what a reset takes from the vocabulary's refs)."""
        counts: dict[int, int] = {}
        await self._begin(chain_id)
        ids, _ = await self._index(chain_id, BACKWARD)
        for lo in range(0, len(ids), WINDOW):
            entries = await self._data(ids[lo : lo + WINDOW])
            nexts = entries[:, 0]  # backward blocks sort by next token first
            starts = np.flatnonzero(np.r_[True, nexts[1:] != nexts[:-1]]) if len(nexts) else nexts
            sums = np.add.reduceat(entries[:, -1], starts) if len(starts) else starts
            for token, k in zip(nexts[starts].tolist(), sums.tolist(), strict=True):
                counts[token] = counts.get(token, 0) + k
        return counts

    async def drop_chain(self, chain_id: int) -> None:
        """Delete every block of a chain."""
        await self._begin(chain_id)
        await self._sql.execute(self._q["delete_chain_blocks"], (chain_id,))
        await self._changed(chain_id)
