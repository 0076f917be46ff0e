"""Hubs: contexts with many successors, kept summed over authors in two packed arrays.

The start of a message, or "of the", has tens of thousands of (successor, author) rows. A walk
that reads such a context from the transitions table sums them row by row (over 100 ms for the
start of a 1,000,000-message chain); from a hub it reads one row and two byte strings. The writer
keeps every hub exact, in the same transaction as the transitions it sums.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.core.chain import Choices

log = logging.getLogger(__name__)

Packed = tuple["array[int]", "array[int]"]  # successor ids (ascending) and their counts


def encode(ids: array[int], counts: array[int]) -> tuple[bytes, bytes]:
    """The two arrays as little-endian int64 bytes (the database file moves between machines)."""
    if sys.byteorder == "big":
        ids, counts = array("q", ids), array("q", counts)
        ids.byteswap()
        counts.byteswap()
    return ids.tobytes(), counts.tobytes()


def decode(ids_blob: bytes, counts_blob: bytes) -> Packed:
    """The arrays encode() packed."""
    ids, counts = array("q"), array("q")
    ids.frombytes(ids_blob)
    counts.frombytes(counts_blob)
    if sys.byteorder == "big":
        ids.byteswap()
        counts.byteswap()
    return ids, counts


def from_rows(rows: Iterable[Sequence[Any]]) -> Packed:
    """Arrays from (successor id, count) rows in ascending id order."""
    pairs = [(int(n), int(k)) for n, k in rows]
    return array("q", (n for n, _ in pairs)), array("q", (k for _, k in pairs))


def add(packed: Packed, deltas: Mapping[int, int], sign: int = 1) -> None:
    """Add sign * counts to successors in place; a successor whose count reaches zero is removed."""
    ids, counts = packed
    for next_id in sorted(deltas):
        delta = sign * deltas[next_id]
        if not delta:
            continue
        i = bisect.bisect_left(ids, next_id)
        if i < len(ids) and ids[i] == next_id:
            counts[i] += delta
            if counts[i] <= 0:
                del ids[i]
                del counts[i]
        elif delta > 0:
            ids.insert(i, next_id)
            counts.insert(i, delta)


def choices(packed: Packed) -> Choices:
    """Choices for chain.choose(): the ids, with cumulative counts."""
    ids, counts = packed
    return ids, array("q", itertools.accumulate(counts))
