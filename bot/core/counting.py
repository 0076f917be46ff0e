"""Counting a batch of messages at once with numpy: transition rows, window rows, token refs.

A batch of 100,000 messages holds about a million transitions; counting them as Python tuples
in a Counter took 3.8x markovify's whole build of the same messages (most of it the garbage
collector walking the tuples). Here they are columns of integers sorted once (np.lexsort), and
equal neighbours are summed: the same rows in the same order, in a tenth of the time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from bot.core import blocks
from bot.core import chain as chainmod
from bot.core.columns import Columns, Ints

TransitionRow = tuple[int, bytes, int, int, int]  # (chain id, packed context, next id, author id, count)
BackRow = tuple[int, int, bytes, int, int]  # (chain id, next id, rotated context, author id, count)
WindowRow = list[int]  # [chain id, fingerprint, author id, count]
# Rows turned into Python objects by one C call at most. A call holds the interpreter lock to its
# end: over a whole batch's rows (100,000 and more) it held it for 50-120 ms, and the event loop,
# about to answer a reply, waited that long (benchmarks/README.md). A slice takes about a millisecond.
ROWS_AT_ONCE = 4096


def _runs(columns: Sequence[Ints]) -> tuple[Ints, Ints]:
    """Sort rows given as columns (the first varies slowest); (index of each distinct row, its count)."""
    order, starts = blocks.distinct_rows(columns)
    counts = np.diff(np.append(starts, len(order)))
    return order[starts], counts.astype(np.int64)


@dataclass(frozen=True)
class Counted:
    """One chain's transitions in a batch: forward entries (c1..cn, next, author, count), sorted by key."""

    chain_id: int
    order: int
    entries: blocks.Entries

    def rows(self) -> list[TransitionRow]:
        """The entries as rows of the transitions table."""
        rows: list[TransitionRow] = []
        for part in _slices(self.entries):
            rows.extend(
                zip(
                    itertools.repeat(self.chain_id),
                    blocks.ctx_blobs(part, self.order),
                    part[:, self.order].tolist(),
                    part[:, self.order + 1].tolist(),
                    part[:, -1].tolist(),
                    strict=False,
                )
            )
        return rows

    def back_rows(self) -> list[BackRow]:
        """The entries as rows of the transitions_back table, in its key order."""
        e = blocks.summed(blocks.to_direction(self.entries, self.order, blocks.BACKWARD))
        rows: list[BackRow] = []
        for part in _slices(e):
            rows.extend(
                zip(
                    itertools.repeat(self.chain_id),
                    part[:, 0].tolist(),
                    blocks.rest_blobs(blocks.to_forward(part, self.order, blocks.BACKWARD), self.order),
                    part[:, self.order + 1].tolist(),
                    part[:, -1].tolist(),
                    strict=False,
                )
            )
        return rows


def _slices(table: Ints) -> Iterator[Ints]:
    """A table's rows, ROWS_AT_ONCE at a time."""
    for lo in range(0, len(table), ROWS_AT_ONCE):
        yield table[lo : lo + ROWS_AT_ONCE]


def count(batch: Columns, ids: Ints) -> tuple[list[Counted], dict[int, int]]:
    """The batch's transitions, per chain in chain order, and token refs (ids: each vocabulary entry's id)."""
    counted: list[Counted] = []
    token_ids = ids[batch.tokens]
    for order in sorted(set(batch.orders.tolist())):
        picked = batch.orders == order
        sizes = batch.lengths[picked]
        lengths = sizes + 1  # transitions of a message: one per token, and END
        # Message i fills padded[offset_i : offset_i + order + lengths_i]: `order` BEGINs, its
        # tokens, END. Its "next" tokens are the lengths_i positions after the BEGINs.
        offsets = np.cumsum(lengths + order) - lengths - order
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        nexts = np.repeat(offsets + order, lengths) + within
        flat = np.full(int((lengths + order).sum()), chainmod.END, dtype=np.int64)
        flat[np.repeat(offsets, order) + np.tile(np.arange(order), len(sizes))] = chainmod.BEGIN
        is_token = within < np.repeat(sizes, lengths)
        flat[nexts[is_token]] = token_ids[np.repeat(picked, batch.lengths)]
        chain_ids = np.repeat(batch.chains[picked], lengths)
        author_ids = np.repeat(batch.authors[picked], lengths)
        context = [flat[nexts - order + c] for c in range(order)]
        first, counts = _runs([chain_ids, *context, flat[nexts], author_ids])
        entries = np.stack(
            [*(c[first] for c in context), flat[nexts][first], author_ids[first], counts], axis=1
        )
        chains = chain_ids[first]
        bounds = np.flatnonzero(np.r_[True, chains[1:] != chains[:-1], True])
        for lo, hi in itertools.pairwise(bounds.tolist()):
            counted.append(Counted(int(chains[lo]), order, entries[lo:hi]))
    counted.sort(key=lambda c: c.chain_id)
    return counted, _refs(token_ids)


def _refs(token_ids: Ints) -> dict[int, int]:
    """How many times each token id occurs."""
    if not len(token_ids):
        return {}
    if int(token_ids.max()) < 4 * len(token_ids) + 65536:  # ids from the counter: count by id, no sort
        times = np.bincount(token_ids)
        values = np.flatnonzero(times)
        times = times[values]
    else:
        values, times = np.unique(token_ids, return_counts=True)
    return dict(zip(values.tolist(), times.tolist(), strict=True))


def windows(batch: Columns) -> Ints:
    """The batch's window-set entries as a table of rows (chain, fingerprint, author, count), sorted by key.

    What a message adds to its chain's window set: its K-runs, and under schemes 2 and 3 its
    normalised whole fingerprint (a hash of another domain: see bot.core.fingerprints), which the
    guard's whole-message check and the report's counts by form look up there.
    """
    formed = batch.formed
    if not len(batch.windows) and not formed.any():
        return np.empty((0, 4), dtype=np.int64)
    fps = np.concatenate([batch.windows, batch.normals[formed]])
    chain_ids = np.concatenate([np.repeat(batch.chains, batch.window_counts), batch.chains[formed]])
    author_ids = np.concatenate([np.repeat(batch.authors, batch.window_counts), batch.authors[formed]])
    first, counts = _runs([chain_ids, fps, author_ids])
    return np.stack([chain_ids[first], fps[first], author_ids[first], counts], axis=1)


def window_rows(table: Ints) -> Iterator[WindowRow]:
    """A window table's rows, as the windows table holds them (made a slice at a time, as they are taken)."""
    for part in _slices(table):
        rows: list[WindowRow] = part.tolist()
        yield from rows


def window_entries_by_chain(table: Ints) -> dict[int, blocks.Entries]:
    """A window table (sorted by key) as each chain's window entries (see blocks.window_entries)."""
    out: dict[int, blocks.Entries] = {}
    if not len(table):
        return out
    bounds = np.flatnonzero(np.r_[True, table[1:, 0] != table[:-1, 0], True])
    for lo, hi in itertools.pairwise(bounds.tolist()):
        high, low = blocks.split_fingerprints(table[lo:hi, 1])
        out[int(table[lo, 0])] = np.column_stack([high, low, table[lo:hi, 2], table[lo:hi, 3]])
    return out
