"""Markov chain mechanics: turning token ids into transitions, and walking them."""

from __future__ import annotations

import itertools
import logging
import random
import struct
from array import array
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

BEGIN = 0
END = 1
FIRST_TOKEN_ID = 2
MAX_WALK = 80  # tokens on each side of the start word

#: (ids, cumulative weights) of the tokens that can follow, or precede, a context. Arrays of
#: 64-bit ints: 8 bytes an entry where a tuple of ints takes 36 (the caches hold millions).
Choices = tuple[Sequence[int], Sequence[int]]


_PACKERS = {n: struct.Struct(f">{n}I").pack for n in range(1, 4)}


def pack(ids: Sequence[int]) -> bytes:
    """Pack a context of token ids into the blob stored in the database (big-endian uint32s)."""
    packer = _PACKERS.get(len(ids))
    return packer(*ids) if packer else struct.pack(f">{len(ids)}I", *ids)


def unpack(blob: bytes) -> tuple[int, ...]:
    """Inverse of pack."""
    return struct.unpack(f">{len(blob) // 4}I", blob)


def transitions(ids: Sequence[int], order: int) -> Iterator[tuple[bytes, int]]:
    """Yield (context, next) for a message: BEGIN-padded contexts, ending with END."""
    padded = [BEGIN] * order + list(ids) + [END]
    for i in range(order, len(padded)):
        yield pack(padded[i - order : i]), padded[i]


def weighted(ids: Sequence[int], counts: Sequence[int]) -> Choices:
    """Ids and their counts (all above zero) as choices: ids and cumulative weights."""
    return array("q", ids), array("q", itertools.accumulate(counts))


def cumulative(rows: Sequence[tuple[int, int]]) -> Choices:
    """Turn (id, count) rows into ids and cumulative weights for choose()."""
    # Loops in C only: a wide state has tens of thousands of rows, and a loop in Python over
    # them was a third of the slowest replies' time.
    if not rows:
        return array("q"), array("q")
    ids, counts = zip(*rows, strict=True)
    if min(counts) <= 0:  # never from the store (rows at 0 are deleted), but a walk must not pick them
        kept = [(token_id, count) for token_id, count in rows if count > 0]
        if not kept:
            return array("q"), array("q")
        ids, counts = zip(*kept, strict=True)
    return array("q", ids), array("q", itertools.accumulate(counts))


def choose(choices: Choices, rng: random.Random) -> int:
    """Pick one id, weighted by count."""
    ids, cum = choices
    # What rng.choices(ids, cum_weights=cum) does, draw for draw, without its per-call set-up.
    return ids[bisect(cum, rng.random() * cum[-1], 0, len(ids) - 1)]


@dataclass(frozen=True, slots=True)
class ChainReader:
    """The reads a walk needs; the Store provides them, tests may provide others."""

    order: int
    successors: Callable[[bytes], Choices]
    #: (next id, context minus its first token) -> choices of that first token
    predecessors: Callable[[int, bytes], Choices]
    #: token id -> choices among the packed contexts that lead into it (ids are row indexes)
    entries_into: Callable[[int], tuple[list[bytes], Choices]]


def walk(reader: ChainReader, rng: random.Random, start: Sequence[int] = ()) -> list[int] | None:
    """Walk one message; with start ids, anchor them mid-message and walk both ways.

    Returns the token ids (no BEGIN/END), or None when the start is not in the chain.
    """
    n = reader.order
    out: list[int] = []
    if not start:
        ctx: tuple[int, ...] = (BEGIN,) * n
    else:
        contexts, choices = reader.entries_into(start[0])
        if not contexts:
            return None
        before = unpack(contexts[choose(choices, rng)])
        out = _walk_back(reader, rng, before)
        out.append(start[0])
        ctx = ((*before, start[0]))[-n:]
        for token in start[1:]:
            ids, _ = reader.successors(pack(ctx))
            if token not in ids:
                return None
            out.append(token)
            ctx = ((*ctx, token))[-n:]
    for _ in range(MAX_WALK):
        choices = reader.successors(pack(ctx))
        if not choices[0]:
            break
        token = choose(choices, rng)
        if token == END:
            break
        out.append(token)
        ctx = ((*ctx, token))[-n:]
    return out


def _walk_back(reader: ChainReader, rng: random.Random, ctx: tuple[int, ...]) -> list[int]:
    """From a context, walk backward to BEGIN; return the tokens before and including ctx."""
    left = [t for t in ctx if t != BEGIN]
    for _ in range(MAX_WALK):
        if ctx[0] == BEGIN:
            break
        choices = reader.predecessors(ctx[-1], pack(ctx[:-1]))
        if not choices[0]:
            break
        previous = choose(choices, rng)
        ctx = (previous, *ctx[:-1])
        if previous != BEGIN:
            left.insert(0, previous)
    return left
