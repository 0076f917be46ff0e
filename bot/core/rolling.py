"""The rolling merge: each delta table moved into its blocks a slice of blocks at a time.

Live learning upserts its counts into three delta tables: transitions (keyed as the forward blocks
sort), transitions_back (as the backward blocks sort) and windows. Merging a chain's whole delta
at once rewrote every one of its blocks in one commit (17 s at 1,000,000 messages, while no batch
could commit). Here each (chain, delta) has a cursor, a key: a step takes up to SLICE blocks from
the one that holds the cursor, takes the delta rows of their key range (read and deleted in one
statement) and writes the blocks back re-cut with them; the cursor moves on to the next block's
first key and wraps round at the end. After a batch, a chain's deltas get SHARE block entries
visited for each row the batch upserted into them: every block is rewritten once per 1/SHARE of
the chain learned, a slice at a time. (Merging the whole delta once it held an eighth of the chain
rewrote them as often; a quarter, measured side by side at 200,000 live messages: the merges took
30 s where an eighth took 57, and the file grew 6%. A half here: into a 1,000,000-message chain
offered 5,000 msgs/s for 120 s, 3,336 and 3,244 msgs/s applied against a quarter's 2,640 and 2,705,
the file 3.5% larger; a chain of 1,000,000 learned live leaves a file a tenth larger once merged,
its pages in use the same, the rest free for later learning: benchmarks/README.md.)

A delta stays whole in its own direction until merged there, which is why each direction has its
own: a slice of contexts has entries in every backward block.

A chain that stops learning would keep that share of its counts in the deltas for good, and reads
pay for it (at 1,000,000 messages, /markov stats took 13-15 s with it, 8-9 s merged). So once
nothing was learned for IDLE_AFTER flush intervals the writer goes on merging, IDLE_SECONDS at a
time (Rolling.idle), until a whole turn of the cursor found a chain's deltas empty.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bot.core import blocks
from bot.core.blocks import BACKWARD, FORWARD, TRANSITIONS, WINDOWS, Entries, Kind
from bot.core.blockwriter import WINDOW, BlockWriter
from bot.core.sqlconn import SqlConn

SLICE = WINDOW  # blocks merged in one step (the most a merge re-cuts together)
SHARE = 2  # block entries visited per delta row learned (the blocks are rewritten once per 1/SHARE learned)
IDLE_SECONDS = 0.2  # merging while idle: at most this long, once a flush interval ...
IDLE_AFTER = 5  # ... once this many flush intervals have passed without learning anything

Key = tuple[Any, ...]  # a delta table's key columns, as its take statement's parameters


def _uint(data: bytes) -> int:
    value: int = struct.unpack(">I", data)[0]
    return value


def _forward_key(first: bytes, order: int) -> Key:
    """A forward block's first key (c1..cn, next, author) as transitions' (ctx, next_id, author_id)."""
    n = 4 * order
    return first[:n], _uint(first[n : n + 4]), _uint(first[n + 4 : n + 8])


def _backward_key(first: bytes, order: int) -> Key:
    """A backward block's first key (next, c2..cn, c1, author) as transitions_back's (next_id, rest, author_id)."""
    n = 4 * order
    return _uint(first[:4]), first[4 : 4 + n], _uint(first[4 + n : 8 + n])


def _window_key(first: bytes, order: int) -> Key:
    """A window block's first key (fingerprint's high and low 32 bits, author) as windows' (fingerprint, author_id)."""
    high, low, author = struct.unpack(">3I", first[:12])
    (fp,) = blocks.join_fingerprints(
        np.array([high], dtype=np.int64), np.array([low], dtype=np.int64)
    ).tolist()
    return int(fp), author


def _back_entries(rows: Sequence[tuple[Any, ...]], order: int) -> Entries:
    return blocks.summed(
        blocks.to_direction(blocks.delta_backward(rows, order), order, BACKWARD), signed=True
    )


@dataclass(frozen=True)
class Delta:
    """One delta table: the blocks it is merged into, its statements, and how its keys and rows read."""

    kind: Kind
    direction: int
    take: str  # read and delete the rows of a key range (queries.sql)
    rows: str  # a chain's rows in it
    key: Callable[[bytes, int], Key]  # a block's first key as the table's key columns
    bottom: Callable[[int], Key]  # below every key of the table
    top: Callable[[int], Key]  # above every key
    entries: Callable[[Sequence[tuple[Any, ...]], int], Entries]  # taken rows as entries in the blocks' order


FORWARD_DELTA = Delta(
    TRANSITIONS,
    FORWARD,
    "take_delta_range",
    "rows_delta",
    _forward_key,
    lambda order: (b"", -1, -1),
    lambda order: (b"\xff" * (4 * order + 1), 0, 0),
    blocks.delta_forward,
)
BACKWARD_DELTA = Delta(
    TRANSITIONS,
    BACKWARD,
    "take_back_delta_range",
    "rows_back_delta",
    _backward_key,
    lambda order: (-1, b"", -1),
    lambda order: (2**62, b"", 0),
    _back_entries,
)
WINDOW_DELTA = Delta(
    WINDOWS,
    FORWARD,
    "take_window_delta_range",
    "rows_window_delta",
    _window_key,
    lambda order: (-(2**63), -1),
    lambda order: (2**63 - 1, 2**62),
    lambda rows, order: blocks.window_entries([(int(f), int(a), int(k)) for f, a, k in rows]),
)
TRANSITION_DELTAS = (FORWARD_DELTA, BACKWARD_DELTA)


class Rolling:
    """Each chain's deltas merged into its blocks a slice at a time, inside the writer's transaction."""

    def __init__(self, sql: SqlConn, writers: Mapping[Kind, BlockWriter]) -> None:
        self._sql = sql
        self._writers = writers
        self._cursors: dict[tuple[int, Delta], bytes] = {}  # the next slice's first key (b"": the start)
        self._credit: dict[tuple[int, Delta], int] = {}  # block entries owed to a delta (negative: ahead)
        self._taken: dict[tuple[int, Delta], int] = {}  # rows taken (or learned) in the cursor's current turn
        self._clean: set[tuple[int, Delta]] = set()  # deltas whose last whole turn took nothing: empty
        self.unmerged: dict[int, int] = {}  # chain -> order: chains whose deltas may hold rows (see idle)

    async def after_batch(
        self, chain_id: int, order: int, delta: Delta, rows: int, merge_rows: int, wide: int = 0
    ) -> list[bytes]:
        """After a batch upserted `rows` rows into a chain's delta, merge the slices they are owed.

        merge_rows: a chain without blocks keeps its delta until it holds this many rows (0: every
        commit merges the whole delta, the tests' setting). Returns the wide contexts met (see
        BlockWriter.merge).
        """
        key = (chain_id, delta)
        if not merge_rows:
            return await self.sweep(chain_id, order, delta, wide)
        if rows:  # somewhere in the key range: the cursor's current turn no longer proves the delta empty
            self._taken[key] = self._taken.get(key, 0) + rows
            self._clean.discard(key)
        credit = self._credit.get(key, 0) + rows * SHARE
        found: list[bytes] = []
        while credit > 0:
            step = await self.step(chain_id, order, delta, wide, merge_rows)
            if step is None:  # no blocks yet, and a delta too small to make them
                credit = 0
                break
            visited, wrapped, contexts, _ = step
            credit -= visited
            found += contexts
            if wrapped:  # every block visited: what is owed beyond it has nothing left to merge
                credit = min(credit, 0)
                break
        self._credit[key] = credit
        return found

    async def sweep(self, chain_id: int, order: int, delta: Delta, wide: int = 0) -> list[bytes]:
        """Merge all of a chain's delta into its blocks, slice after slice from the start."""
        self._cursors[(chain_id, delta)] = b""
        found: list[bytes] = []
        while True:
            step = await self.step(chain_id, order, delta, wide, 0)
            assert step is not None
            _, wrapped, contexts, _ = step
            found += contexts
            if wrapped:
                return found

    async def step(
        self, chain_id: int, order: int, delta: Delta, wide: int, merge_rows: int
    ) -> tuple[int, bool, list[bytes], int] | None:
        """Merge the next slice: (block entries and delta rows visited, whether it reached the end, the
        wide contexts met, delta rows taken); None when the chain has no blocks and fewer than
        merge_rows delta rows."""
        key = (chain_id, delta)
        writer = self._writers[delta.kind]
        cursor = self._cursors.get(key, b"")
        found = await writer.slice(chain_id, delta.direction, cursor, SLICE + 1)
        if not found:
            cursor = b""
            if merge_rows:
                row = await self._sql.fetchone(self._sql.statements[delta.rows], (chain_id,))
                if not row or int(row[0]) < merge_rows:
                    return None
        taken = found[:SLICE]
        end = found[SLICE][1] if len(found) > SLICE else None
        low = delta.key(cursor, order) if cursor else delta.bottom(order)
        high = delta.key(end, order) if end is not None else delta.top(order)
        rows = await self._sql.fetchall(self._sql.statements[delta.take], (chain_id, *low, *high))
        change = await asyncio.to_thread(delta.entries, [tuple(r) for r in rows], order)
        contexts: list[bytes] = []
        if len(change):
            ids, firsts = [i for i, _, _ in taken], [f for _, f, _ in taken]
            threshold = wide if delta is FORWARD_DELTA else 0
            contexts = await writer.merge_slice(
                chain_id, order, delta.direction, ids, firsts, change, threshold
            )
        self._cursors[key] = end or b""
        self._taken[key] = self._taken.get(key, 0) + len(rows)
        if end is None:  # a turn ends: empty if it took nothing
            if self._taken.pop(key) == 0:
                self._clean.add(key)
            else:
                self._clean.discard(key)
        return sum(n for _, _, n in taken) + len(change), end is None, contexts, len(rows)

    async def idle(
        self, chain_id: int, order: int, delta: Delta, wide: int, merge_rows: int, until: float
    ) -> tuple[bool, int, list[bytes]]:
        """Merge a chain's delta slice after slice until time.monotonic() reaches until: (whether a whole
        turn of the cursor found it empty, delta rows taken, the wide contexts met)."""
        key = (chain_id, delta)
        taken, found = 0, list[bytes]()
        while key not in self._clean and time.monotonic() < until:
            step = await self.step(chain_id, order, delta, wide, merge_rows)
            if step is None:  # no blocks, and a delta too small to make them: it waits for learning
                return True, taken, found
            found += step[2]
            taken += step[3]
        return key in self._clean, taken, found

    def forget_chain(self, chain_id: int) -> None:
        """Drop a chain's cursors and credit (its blocks are gone)."""
        for key in [
            k for k in self._cursors.keys() | self._credit.keys() | self._taken.keys() if k[0] == chain_id
        ]:
            self._cursors.pop(key, None)
            self._credit.pop(key, None)
            self._taken.pop(key, None)
        self._clean = {k for k in self._clean if k[0] != chain_id}
        self.unmerged.pop(chain_id, None)
