"""A chain's transitions as one view: its blocks (bot.core.blocks) plus the delta rows not yet merged.

Every read of transition counts goes through here, over bot.core.reads (SQLite or PostgreSQL: the
walker's, a report scan's; a plain sqlite3 connection is taken too, the attack's), and gets entries
in forward column order, (c1..cn, next, author, count), each key once with its whole count.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from bot.core import blocks
from bot.core import chain as chainmod
from bot.core.blocks import BACKWARD, FORWARD, Entries
from bot.core.reads import Reads, of

__all__ = ["Entries"]

Db = Reads | sqlite3.Connection  # where a read runs (see bot.core.reads.of)


def _delta(db: Reads, name: str, params: tuple[object, ...], order: int) -> Entries:
    return blocks.delta_forward(db.rows(name, *params), order)


def _rest_range(suffix: bytes) -> tuple[bytes, bytes]:
    """The backward delta's rests (c2..cn, c1) of contexts ending in suffix: from suffix + c1 = 0 to this top."""
    return suffix, suffix + b"\xff" * 4


def _into(db: Reads, chain_id: int, order: int, next_id: int, suffix: Sequence[int] | None) -> Entries:
    """The backward delta's entries into next_id (from contexts ending in suffix), in forward column order."""
    if suffix is None:
        rows = db.rows("delta_into", chain_id, next_id)
    else:
        rows = db.rows("delta_into_suffix", chain_id, next_id, *_rest_range(blocks.key_bytes(suffix)))
    return blocks.delta_backward(rows, order)


def _sum(found: Entries, delta: Entries) -> Entries:
    """Block entries and delta entries (keys may be in both) as one sorted, summed set."""
    return found if not len(delta) else blocks.summed(np.concatenate([found, delta]))


def backward(db: Db, chain_id: int, order: int, next_id: int, suffix: Sequence[int] | None) -> Entries:
    """Entries leading into next_id (from contexts ending in suffix, when given), in forward column order."""
    prefix = [next_id, *(suffix or ())]
    reads = of(db)
    with reads.snapshot():
        found = blocks.read_prefix(reads, chain_id, order, BACKWARD, prefix)
        delta = _into(reads, chain_id, order, next_id, suffix)
    return _sum(blocks.summed(blocks.to_forward(found, order, BACKWARD)), delta)


def every_backward(db: Db, chain_id: int, order: int) -> Entries:
    """Every entry of a chain as its backward blocks and delta hold them, in forward column order,
    sorted by key (the forward view's twin: the tests check that the two agree)."""
    reads = of(db)
    with reads.snapshot():
        found = blocks.read_all(reads, chain_id, order, BACKWARD)
        delta = blocks.delta_backward(reads.rows("back_delta_all", chain_id), order)
    return _sum(blocks.summed(blocks.to_forward(found, order, BACKWARD)), delta)


def every(db: Db, chain_id: int, order: int) -> Entries:
    """Every entry of a chain, sorted by key.

    Each read takes blocks and delta in one snapshot (Reads.snapshot): a merge committed in between
    is seen whole or not at all.
    """
    reads = of(db)
    with reads.snapshot():
        found = blocks.read_all(reads, chain_id, order, FORWARD)
        delta = _delta(reads, "delta_all", (chain_id,), order)
    return _sum(found, delta)


SCAN_BLOCKS = 256  # blocks a scan holds decoded at once (about 2.5 MB)


def scan(
    db: Db,
    chain_id: int,
    order: int,
    visit: Callable[[Entries], None],
    prefix: Sequence[int] = (),
) -> None:
    """Every entry of a chain (whose context starts with prefix), sorted, handed to visit in chunks
    that each hold whole contexts.

    Memory stays at a window of blocks and the delta rows of its contexts, whatever the chain's size.
    """
    width = 4 * order
    start = blocks.key_bytes(prefix)
    end = start + b"\xff" * (width - len(start) + 1)  # above every context that starts with prefix
    reads = of(db)
    with reads.snapshot():
        if prefix:
            index = reads.rows("block_range_index", chain_id, FORWARD, *blocks.prefix_range(prefix, order))
        else:
            index = reads.rows("block_index", chain_id, FORWARD)
        ids, firsts = [int(r[0]) for r in index], [bytes(r[1])[:width] for r in index]
        carry = np.empty((0, blocks.width(order)), dtype=np.int64)
        windows = range(0, max(len(ids), 1), SCAN_BLOCKS)
        for lo in windows:
            taken = ids[lo : lo + SCAN_BLOCKS]
            # The delta rows of the contexts from this window's first block to the next window's.
            low = max(firsts[lo], start) if lo else start
            high = min(firsts[lo + SCAN_BLOCKS], end) if lo + SCAN_BLOCKS < len(ids) else end
            part = _delta(reads, "delta_range", (chain_id, low, high), order)
            rows = reads.rows("block_data_by_id", reads.ids(taken)) if taken else []
            data = {int(i): bytes(block) for i, block in rows}
            found, _ = blocks.decode_many([data[i] for i in taken], blocks.width(order))
            merged = np.concatenate([carry, found, part])
            if len(part):
                merged = blocks.summed(merged)
            merged = blocks.with_prefix(merged, prefix)
            if lo == windows[-1]:
                carry = merged
                break
            last = len(blocks.with_prefix(merged, merged[-1, :order].tolist())) if len(merged) else 0
            if len(merged) > last:
                visit(merged[: len(merged) - last])
            carry = merged[len(merged) - last :]
        if len(carry):
            visit(carry)


def of_author(entries: Entries, author_id: int | None) -> Entries:
    """The entries of one author (all of them for None)."""
    return entries if author_id is None else entries[entries[:, -2] == author_id]


Counts = tuple[list[int], list[int]]  # (token ids ascending, the count of each)


def _runs(values: Entries, counts: Entries) -> tuple[Entries, Entries]:
    """Sorted values with their counts: each distinct value once, its counts added up."""
    if not len(values):
        return values, counts
    change = np.empty(len(values), dtype=bool)
    change[0] = True
    np.not_equal(values[1:], values[:-1], out=change[1:])
    starts = np.flatnonzero(change)
    return values[starts], np.add.reduceat(counts, starts)


# Up to this many entries, counting in Python beats numpy's fixed cost a call (a walk step's median: 5).
FEW_ENTRIES = 64


def _counts(found: Entries, column: int, delta: list[tuple[int, int]]) -> Counts:
    """Counts by value of one column of block entries (sorted by it) and of delta pairs (value,
    count) in any order, added up."""
    if len(found) <= FEW_ENTRIES:
        totals: dict[int, int] = {}
        for value, count in zip(found[:, column].tolist(), found[:, -1].tolist(), strict=True):
            totals[value] = totals.get(value, 0) + count
        for value, count in delta:
            totals[value] = totals.get(value, 0) + count
        ordered = sorted(totals)
        return ordered, [totals[i] for i in ordered]
    ids, sums = _runs(found[:, column], found[:, -1])
    if delta:
        values = np.array([v for v, _ in delta], dtype=np.int64)
        order = np.argsort(np.concatenate([ids, values]), kind="stable")
        counts = np.array([k for _, k in delta], dtype=np.int64)
        ids, sums = _runs(np.concatenate([ids, values])[order], np.concatenate([sums, counts])[order])
    return ids.tolist(), sums.tolist()


def _combined(
    reads: Reads,
    name: str,
    order: int,
    prefix: Sequence[int],
    cache: blocks.Cache | None,
    chain_id: int,
    *params: object,
) -> tuple[Entries, list[tuple[Any, ...]]]:
    """(block entries with prefix, delta rows as (ctx, next, author, count)) of one statement that
    reads both: one snapshot with no transaction; on SQLite 0.17-0.22 -> 0.15 ms a walk step (five
    statements before: a transaction's two, the block ids, a block's data, the delta's rows)."""
    rows = reads.rows(name, chain_id, *blocks.prefix_range(prefix, order), *params)
    held = sorted((r for r in rows if r[0] == 0), key=lambda r: bytes(r[2]))  # the blocks in key order
    found = blocks.from_blocks([(r[1], r[3]) for r in held], order, prefix, cache)
    return found, [tuple(r[4:]) for r in rows if r[0] == 1]


def successors(
    db: Db,
    chain_id: int,
    ctx: bytes,
    author_id: int | None = None,
    cache: blocks.Cache | None = None,
) -> Counts:
    """Tokens that follow a context, with their counts (of one author, when given)."""
    order = len(ctx) // 4
    found, delta = _combined(of(db), "successors_read", order, chainmod.unpack(ctx), cache, chain_id, ctx)
    mine = [(n, k) for _, n, a, k in delta if author_id is None or a == author_id]
    return _counts(of_author(found, author_id), order, mine)


def predecessors(
    db: Db,
    chain_id: int,
    next_id: int,
    suffix: bytes,
    author_id: int | None = None,
    cache: blocks.Cache | None = None,
) -> Counts:
    """Tokens that can precede (suffix, next): the first token of contexts leading into next, with counts."""
    order = len(suffix) // 4 + 1
    prefix = [next_id, *chainmod.unpack(suffix)]
    found, delta = _combined(
        of(db), "predecessors_read", order, prefix, cache, chain_id, next_id, *_rest_range(suffix)
    )
    # blocks: (next, c2..cn, c1, author, count), sorted by c1; delta rows: (rest, next, author, count), rest = c2..cn, c1
    mine = [
        (chainmod.unpack(bytes(x)[-4:])[0], k) for x, _, a, k in delta if author_id is None or a == author_id
    ]
    return _counts(of_author(found, author_id), order, mine)


def entries_into(
    db: Db, chain_id: int, order: int, next_id: int, author_id: int | None, limit: int
) -> tuple[list[bytes], list[int]]:
    """The first `limit` contexts (in key order) that lead into a token, packed, with their counts."""
    entries = of_author(backward(db, chain_id, order, next_id, None), author_id)
    keys, counts = grouped(entries[:, :order], entries[:, -1])
    return [chainmod.pack(k) for k in keys[:limit]], counts[:limit]


def grouped(keys: Entries, counts: Entries) -> tuple[list[tuple[int, ...]], list[int]]:
    """Distinct rows of keys (sorted) and the summed counts of each."""
    if not len(keys):
        return [], []
    order = np.lexsort(keys.T[::-1])
    keys, counts = keys[order], counts[order]
    change = np.ones(len(keys), dtype=bool)
    change[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    starts = np.flatnonzero(change)
    return [tuple(k) for k in keys[starts].tolist()], np.add.reduceat(counts, starts).tolist()


class Shape(NamedTuple):
    """What the report's state, forced-share and entropy figures are made of (see bot.core.reports)."""

    rows: int
    states: int
    pairs: int
    forced: int
    total: int
    state_log: float
    pair_log: float


def add_shapes(a: Shape, b: Shape) -> Shape:
    """The shape of two sets of whole contexts together."""
    return Shape(
        a.rows + b.rows,
        a.states + b.states,
        a.pairs + b.pairs,
        a.forced + b.forced,
        a.total + b.total,
        a.state_log + b.state_log,
        a.pair_log + b.pair_log,
    )


def shape(entries: Entries, order: int) -> Shape:
    """A chain's entries counted by state (context) and by (state, successor) pair."""
    if not len(entries):
        return Shape(0, 0, 0, 0, 0, 0.0, 0.0)
    counts = entries[:, -1]
    ctx = entries[:, :order]
    new_state = np.ones(len(entries), dtype=bool)
    new_state[1:] = np.any(ctx[1:] != ctx[:-1], axis=1)
    new_pair = new_state.copy()
    new_pair[1:] |= entries[1:, order] != entries[:-1, order]
    states = np.flatnonzero(new_state)
    pairs = np.flatnonzero(new_pair)
    state_totals = np.add.reduceat(counts, states)
    pair_totals = np.add.reduceat(counts, pairs)
    lo = entries[states, order]
    hi = entries[np.append(states[1:], len(entries)) - 1, order]
    forced = int(state_totals[lo == hi].sum())

    def tlogt(t: Entries) -> float:
        t = t[t > 1].astype(np.float64)
        return math.fsum((t * np.log2(t)).tolist())

    return Shape(
        len(entries),
        len(states),
        len(pairs),
        forced,
        int(counts.sum()),
        tlogt(state_totals),
        tlogt(pair_totals),
    )
