"""An import's counts held until its transaction commits: one sorted run a batch, packed as blocks are.

Merging every batch of an import into a chain's blocks rewrote nearly all of them each time (Zipf
contexts touch every block), 14 times over at 1,000,000 messages. Staged, a batch costs only its
own packing (about 3.5 bytes an entry); at the commit the runs are merged with one another and
the blocks in one pass, in key order, a part at a time (see BlockWriter.merge_sorted).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from bot.core import blocks
from bot.core.blocks import Entries, Kind

STAGED_CHUNK = 4096  # entries a staged chunk packs (a block holds 256: staged, 16x fewer to pack and unpack)
PART_ENTRIES = 1 << 18  # entries decoded and summed at once, at least (about 13 MB of int64 at order 2)
CHUNK_OVERHEAD = 150  # bytes Python spends on a packed chunk beside its data (tuple, two bytes objects)

#: A packed piece of a run: (first key, entries, data), as blocks.encode_chunks makes them.
Chunk = tuple[bytes, int, bytes]


@dataclass
class _Chain:
    order: int
    runs: dict[int, list[list[Chunk]]] = field(default_factory=dict)  # by direction


class Staging:
    """Each chain's staged runs, by kind and direction; what they take in memory."""

    def __init__(self) -> None:
        self._chains: dict[tuple[Kind, int], _Chain] = {}
        self.nbytes = 0

    def add(self, kind: Kind, chain_id: int, order: int, forward: Entries) -> None:
        """Stage signed counts (forward column order, any order of rows) as a run in each direction."""
        if not len(forward):
            return
        staged = self._chains.setdefault((kind, chain_id), _Chain(order))
        for direction in kind.directions:
            change = blocks.summed(blocks.to_direction(forward, order, direction), signed=True)
            run = blocks.encode_chunks(change, STAGED_CHUNK)
            if run:
                staged.runs.setdefault(direction, []).append(run)
                self.nbytes += sum(len(first) + len(data) + CHUNK_OVERHEAD for first, _, data in run)

    def chains(self) -> list[tuple[Kind, int, int]]:
        """(kind, chain, order) of everything staged."""
        return [(kind, chain_id, c.order) for (kind, chain_id), c in self._chains.items()]

    def runs(self, kind: Kind, chain_id: int, direction: int) -> list[list[Chunk]]:
        """A chain's staged runs in one direction."""
        found = self._chains.get((kind, chain_id))
        return found.runs.get(direction, []) if found else []

    def clear(self) -> None:
        """Drop everything staged (committed, or rolled back)."""
        self._chains.clear()
        self.nbytes = 0


def _below(entries: Entries, bound: bytes) -> int:
    """How many of the sorted entries have a key below bound (big-endian uint32s): a binary search."""
    key = struct.unpack(f">{len(bound) // 4}I", bound)
    lo, hi = 0, len(entries)
    while lo < hi:
        mid = (lo + hi) // 2
        if tuple(entries[mid, : len(key)].tolist()) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def merged_parts(
    runs: Sequence[Sequence[Chunk]], group: int = 0, size: int = PART_ENTRIES
) -> Iterator[Entries]:
    """The runs merged into one sorted, summed stream, yielded in parts of about size entries or more.

    A part ends only where no chunk yet to be read can hold a smaller key, and never inside a group
    of entries that share their first `group` columns (a context: the hubs look for wide ones in
    each part).
    """
    order = sorted((run[i][0], r, i) for r, run in enumerate(runs) for i in range(len(run)))
    held: list[Entries] = []
    count = 0
    for j, (_, r, i) in enumerate(order):
        held.append(blocks.decode(runs[r][i][2]))
        count += len(held[-1])
        if count < size or j + 1 == len(order):
            continue
        bound = order[j + 1][0]  # every chunk not read yet starts at or after this key
        if group:  # the group's first key: its entries all fall after the cut
            bound = bound[: 4 * group] + bytes(len(bound) - 4 * group)
        merged = blocks.summed(np.concatenate(held), signed=True)
        cut = _below(merged, bound)
        held, count = [merged[cut:]], len(merged) - cut
        if cut:
            yield merged[:cut]
    if held:
        rest = blocks.summed(np.concatenate(held), signed=True)
        if len(rest):
            yield rest
