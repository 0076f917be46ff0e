"""A chain's transitions as one view: its blocks (bot.core.blocks) plus the delta rows not yet merged.

Every read of transition counts goes through here, on a plain sqlite3 connection (the walker's,
a report scan's, the attack's), and gets entries in forward column order, (c1..cn, next,
author, count), each key once with its whole count.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from bot.core import blocks
from bot.core import chain as chainmod
from bot.core.blocks import BACKWARD, FORWARD, Entries

__all__ = ["Entries"]
from bot.core.sql import Q


def _delta(conn: sqlite3.Connection, name: str, params: tuple[object, ...], order: int) -> Entries:
    return blocks.delta_forward(conn.execute(Q[name], params).fetchall(), order)


@contextlib.contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """Blocks and delta read in one read transaction: a merge committed in between is seen whole or not at all."""
    if conn.in_transaction:  # the writer's own transaction, or an enclosing snapshot
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _sum(found: Entries, delta: Entries) -> Entries:
    """Block entries and delta entries (keys may be in both) as one sorted, summed set."""
    return found if not len(delta) else blocks.summed(np.concatenate([found, delta]))


def forward(conn: sqlite3.Connection, chain_id: int, order: int, prefix: Sequence[int]) -> Entries:
    """Entries whose context starts with prefix (at most order tokens), sorted by key."""
    lo = blocks.key_bytes(prefix)
    hi = lo + b"\xff" * 4 * (order - len(prefix))
    with snapshot(conn):
        found = blocks.read_prefix(conn, chain_id, order, FORWARD, prefix)
        delta = _delta(conn, "delta_forward", (chain_id, lo, hi), order)
    return _sum(found, delta)


def backward(
    conn: sqlite3.Connection, chain_id: int, order: int, next_id: int, suffix: Sequence[int] | None
) -> Entries:
    """Entries leading into next_id (from contexts ending in suffix, when given), in forward column order."""
    prefix = [next_id, *(suffix or ())]
    with snapshot(conn):
        found = blocks.read_prefix(conn, chain_id, order, BACKWARD, prefix)
        if suffix is None:
            delta = _delta(conn, "delta_into", (chain_id, next_id), order)
        else:
            delta = _delta(conn, "delta_into_suffix", (chain_id, next_id, blocks.key_bytes(suffix)), order)
    return _sum(blocks.summed(blocks.to_forward(found, order, BACKWARD)), delta)


def every(conn: sqlite3.Connection, chain_id: int, order: int) -> Entries:
    """Every entry of a chain, sorted by key."""
    with snapshot(conn):
        found = blocks.read_all(conn, chain_id, order, FORWARD)
        delta = _delta(conn, "delta_all", (chain_id,), order)
    return _sum(found, delta)


def of_author(entries: Entries, author_id: int | None) -> Entries:
    """The entries of one author (all of them for None)."""
    return entries if author_id is None else entries[entries[:, -2] == author_id]


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


def by_column(entries: Entries, column: int) -> list[tuple[int, int]]:
    """(value, summed count) of one column, ascending (e.g. successors: the next column)."""
    keys, counts = grouped(entries[:, [column]], entries[:, -1])
    return [(k[0], c) for k, c in zip(keys, counts, strict=True)]


def successors(
    conn: sqlite3.Connection, chain_id: int, ctx: bytes, author_id: int | None = None
) -> list[tuple[int, int]]:
    """(next id, count) after a context, ascending by id."""
    order = len(ctx) // 4
    entries = of_author(forward(conn, chain_id, order, chainmod.unpack(ctx)), author_id)
    return by_column(entries, order)


class Shape(NamedTuple):
    """What the report's state, forced-share and entropy figures are made of (see bot.core.reports)."""

    rows: int
    states: int
    pairs: int
    forced: int
    total: int
    state_log: float
    pair_log: float


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
