"""Transition counts in blocks: a chain's entries sorted, cut into runs, packed and compressed.

An entry is one author's count of one transition. Each chain keeps its entries twice, in two
orders (directions): forward by (context, next, author), for what follows a context; backward by
(next, context's last n-1 tokens, its first token, author), for what leads into a token (start
words walk backward). A block is a row holding up to BLOCK_ENTRIES consecutive entries: its first
key (big-endian uint32s, so that SQLite orders blobs as the keys) and the entries' columns, each
in the narrowest unsigned type that holds it, the first as differences, all compressed with zstd.
About 3.5 bytes an entry where a row of the transitions table and its index took 40.

Learning lands in the transitions table first (the delta: cheap to upsert while small); the
writer merges it into blocks (bot.core.writer). A read is the sum of both.

The K-token window fingerprints of a chain (kind WINDOWS, table window_blocks; delta: the windows
table) are kept the same way, in one direction: entries (fingerprint's high 32 bits, its low 32
bits, author, count), 6.2 bytes an entry where a row of the windows table took 17 (200,000 messages).
"""

from __future__ import annotations

import itertools
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import zstandard

from bot.core.lru import LRU
from bot.core.sql import Q

if TYPE_CHECKING:
    from bot.core.reads import Reads

Entries = npt.NDArray[np.int64]  # (n, width): key columns, then the count
FORWARD, BACKWARD = 0, 1
DIRECTIONS = (FORWARD, BACKWARD)
BLOCK_ENTRIES = 256  # entries per block at most (a read decodes one or two: 15 µs each)
_TYPES = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<u8"))
_TOPS = (2**8 - 1, 2**16 - 1, 2**32 - 1, 2**64 - 1)
_HEADER = struct.Struct("<IB")  # entries, columns
PLANES = 0x80  # a column code's flag: the column's values stored as byte planes (all low bytes first)
ZSTD_LEVEL = 1  # 8.1 µs to pack a block where level 3 took 10.4, 0.3% larger (28,000 blocks of a 1M chain)
_codecs = threading.local()  # a zstd (de)compressor may not be shared between threads at once


def _compress(raw: bytes) -> bytes:
    if not hasattr(_codecs, "compress"):
        _codecs.compress = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress
    packed: bytes = _codecs.compress(raw)
    return packed


def _decompress(data: bytes) -> bytes:
    if not hasattr(_codecs, "decompress"):
        _codecs.decompress = zstandard.ZstdDecompressor().decompress
    raw: bytes = _codecs.decompress(data)
    return raw


def width(order: int) -> int:
    """Columns of an entry: order context tokens, next, author, count."""
    return order + 3


@dataclass(frozen=True)
class Kind:
    """A table of blocks: the prefix of its statements' names in queries.sql, and its directions."""

    statements: str
    directions: tuple[int, ...]
    columns: int = 0  # columns of an entry, when the chain's order does not set them
    versioned: bool = False  # every change gives the chain a new version (the <statements>changes counter)
    # A forget rewrites the blocks in place, ids kept (readers that cache blocks by id drop them when
    # the chain's removals change); else as new rows (readers cache by id for good).
    in_place: bool = False

    def q(self, name: str) -> str:
        """The kind's version of a block statement."""
        return Q[self.statements + name]

    def width(self, order: int) -> int:
        """Columns of an entry of a chain of this order."""
        return self.columns or width(order)


TRANSITIONS = Kind("", DIRECTIONS, in_place=True)
# Entries (fingerprint high bits, low bits, author, count).
WINDOWS = Kind("window_", (FORWARD,), 4, versioned=True, in_place=True)
_SIGN = 2**31


def split_fingerprints(fps: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Signed 64-bit fingerprints as (high 32 bits with the sign flipped, low 32 bits): both
    unsigned, and ordered as the fingerprints are."""
    values = np.asarray(fps, dtype=np.int64)
    return (values >> 32) + _SIGN, values & 0xFFFFFFFF


def join_fingerprints(high: npt.NDArray[np.int64], low: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The inverse of split_fingerprints."""
    joined: npt.NDArray[np.int64] = ((high - _SIGN) << 32) | low
    return joined


def window_entries(rows: Sequence[tuple[int, int, int]]) -> Entries:
    """(fingerprint, author, count) rows as window entries, summed by key (counts may be signed)."""
    if not rows:
        return np.empty((0, WINDOWS.columns), dtype=np.int64)
    table = np.array(rows, dtype=np.int64).reshape(len(rows), 3)
    high, low = split_fingerprints(table[:, 0])
    return summed(np.column_stack([high, low, table[:, 1], table[:, 2]]), signed=True)


def to_direction(forward: Entries, order: int, direction: int) -> Entries:
    """Entries in forward column order (c1..cn, next, author, count) rearranged for a direction."""
    if direction == FORWARD:
        return forward
    columns = [order, *range(1, order), 0, order + 1, order + 2]  # next, c2..cn, c1, author, count
    return np.ascontiguousarray(forward[:, columns])


def to_forward(entries: Entries, order: int, direction: int) -> Entries:
    """The inverse of to_direction."""
    if direction == FORWARD:
        return entries
    columns = [order, *range(1, order), 0, order + 1, order + 2]
    back = np.empty_like(entries)
    back[:, columns] = entries
    return back


# ---------------------------------------------------------------- packing


def encode_chunks(entries: Entries, size: int = 0) -> list[tuple[bytes, int, bytes]]:
    """Sorted entries cut into blocks of size (else BLOCK_ENTRIES) entries at most, as even as can
    be: (first key, entries, data) of each, all packed at once (encode_cut)."""
    n = len(entries)
    if not n:
        return []
    pieces = -(-n // (size or BLOCK_ENTRIES))
    return encode_cut(entries, [n * i // pieces for i in range(pieces + 1)])


def encode_cut(entries: Entries, bounds: Sequence[int]) -> list[tuple[bytes, int, bytes]]:
    """Sorted entries packed as blocks from each bound to the next (increasing, from 0 to the
    entries' count): (first key, entries, data) of each.

    Each column takes the narrowest type that holds it across all the blocks (zstd takes up the
    slack), so a column is converted once, not once a block: a forget rewrites every block. A
    first column of 4 bytes or more (the differences of window fingerprints' high bits, each
    block's first value whole) is stored as byte planes, all low bytes first: its mostly-zero high
    bytes then sit together, where zstd packs them to nearly nothing (7.0 -> 6.2 bytes an entry).
    """
    n, columns = entries.shape
    if not n:
        return []
    starts = np.array(bounds[:-1])
    first = entries[:, 0].copy()
    first[1:] -= entries[:-1, 0]
    first[starts] = entries[starts, 0]  # each block's first column from 0, as decode adds it up
    packed: list[memoryview] = []  # each column's bytes, row after row (or plane after plane)
    codes = bytearray()
    for c in range(columns):
        column = first if c == 0 else entries[:, c]
        top = int(column.max())
        code = next(i for i, most in enumerate(_TOPS) if top <= most)
        raw = column.astype(_TYPES[code])
        if c == 0 and code >= 2:  # wide differences (window fingerprints): byte planes, a row each
            code |= PLANES
            raw = raw.view(np.uint8).reshape(n, _TYPES[code & ~PLANES].itemsize).T
        codes.append(code)
        packed.append(memoryview(raw.tobytes()))
    sizes = [_TYPES[code & ~PLANES].itemsize for code in codes]
    keys = memoryview(np.ascontiguousarray(entries[starts, :-1]).astype(">u4").tobytes())
    step = 4 * (columns - 1)
    rows = []
    for b, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        body: list[bytes | bytearray | memoryview] = [_HEADER.pack(hi - lo, columns), codes]
        for stored, code, size in zip(packed, codes, sizes, strict=True):
            if code & PLANES:
                body.extend(stored[p * n + lo : p * n + hi] for p in range(size))
            else:
                body.append(stored[lo * size : hi * size])
        rows.append((keys[b * step : (b + 1) * step].tobytes(), hi - lo, _compress(b"".join(body))))
    return rows


def decode(data: bytes, leading: int = 0) -> Entries:
    """The entries of a block (only their first `leading` columns, when given)."""
    raw = _decompress(data)
    n, columns = _HEADER.unpack_from(raw)
    offset = _HEADER.size + columns
    codes = raw[_HEADER.size : offset][: leading or columns]
    out = np.empty((n, len(codes)), dtype=np.int64)
    for c, code in enumerate(codes):
        kind = _TYPES[code & ~PLANES]
        if code & PLANES:
            planes = np.frombuffer(raw, dtype=np.uint8, count=n * kind.itemsize, offset=offset)
            out[:, c] = np.ascontiguousarray(planes.reshape(kind.itemsize, n).T).view(kind).ravel()
        else:
            out[:, c] = np.frombuffer(raw, dtype=kind, count=n, offset=offset)
        offset += n * kind.itemsize
    if n:
        out[:, 0] = np.cumsum(out[:, 0])
    return out


FEW_BLOCKS = 6  # decode_many decodes fewer one at a time (its fixed cost is some 60-100 µs)


def decode_many(datas: Sequence[bytes], columns: int = 0) -> tuple[Entries, npt.NDArray[np.int64]]:
    """Blocks' entries, concatenated in the blocks' order, and each block's count of them: decode()
    of each, but each column of all the blocks stored alike converted at once (512 blocks of a
    chain: 20 µs a block, decompressing included, against 35-45). columns: the entries' width when
    there may be no block."""
    if len(datas) < FEW_BLOCKS:
        parts = [decode(data) for data in datas]
        sizes = np.array([len(part) for part in parts], dtype=np.int64)
        return (np.concatenate(parts) if parts else np.empty((0, columns), dtype=np.int64)), sizes
    raws = [_decompress(data) for data in datas]
    heads = [_HEADER.unpack_from(raw) for raw in raws]
    sizes = np.array([n for n, _ in heads], dtype=np.int64)
    columns = max((c for _, c in heads), default=columns)
    out = np.empty((int(sizes.sum()), columns), dtype=np.int64)
    if not len(out):
        return out, sizes
    starts = np.cumsum(sizes) - sizes
    groups: dict[bytes, list[int]] = {}  # blocks by how their columns are stored
    for b, (raw, (_, width_b)) in enumerate(zip(raws, heads, strict=True)):
        groups.setdefault(raw[_HEADER.size : _HEADER.size + width_b], []).append(b)
    group_of = np.zeros(len(raws), dtype=np.int64)
    for g, members in enumerate(groups.values()):
        group_of[members] = g
    group_of_entry = np.repeat(group_of, sizes)
    for g, (codes, members) in enumerate(groups.items()):
        if len(codes) != columns:
            raise ValueError("blocks of different widths decoded together")
        views = [memoryview(raws[b]) for b in members]
        counts = [heads[b][0] for b in members]
        offsets = [_HEADER.size + columns] * len(members)
        rows = slice(None) if len(groups) == 1 else np.flatnonzero(group_of_entry == g)
        for c, code in enumerate(codes):
            kind = _TYPES[code & ~PLANES]
            if code & PLANES:  # each plane of every block, then the planes' bytes as values
                planes = [
                    b"".join(
                        v[o + p * n : o + (p + 1) * n] for v, o, n in zip(views, offsets, counts, strict=True)
                    )
                    for p in range(kind.itemsize)
                ]
                raw_values = np.frombuffer(b"".join(planes), dtype=np.uint8).reshape(kind.itemsize, -1)
                out[rows, c] = np.ascontiguousarray(raw_values.T).view(kind).ravel()
            else:
                joined = b"".join(
                    v[o : o + n * kind.itemsize] for v, o, n in zip(views, offsets, counts, strict=True)
                )
                out[rows, c] = np.frombuffer(joined, dtype=kind)
            offsets = [o + n * kind.itemsize for o, n in zip(offsets, counts, strict=True)]
    # Each block's first column is stored as differences from its first value: add them up per block.
    total = np.cumsum(out[:, 0])
    held = sizes > 0
    before = np.zeros(len(sizes), dtype=np.int64)
    before[held] = total[starts[held]] - out[starts[held], 0]
    out[:, 0] = total - np.repeat(before, sizes)
    return out, sizes


def key_bytes(key: Sequence[int]) -> bytes:
    """A key (or a key's prefix) as stored in a block's first column: big-endian uint32s."""
    return struct.pack(f">{len(key)}I", *key)


def sort_keys(
    columns: Sequence[npt.NDArray[np.int64]],
) -> list[npt.NDArray[np.int64] | npt.NDArray[np.uint64]]:
    """Sort keys for np.lexsort (the first varies slowest): a column that holds one value left out (it
    orders nothing: an import's chain and author), and neighbouring columns fused into one unsigned
    key while their values' widths fit in 64 bits together (a chain's ids seldom need 20 bits, so a
    whole key is often one integer, sorted in one pass; a window's fingerprint halves make one)."""
    fused: list[npt.NDArray[np.int64] | npt.NDArray[np.uint64]] = []
    width = 64  # bits used by the last fused key (64: start a new one)
    for column in columns:
        low = int(column.min()) if len(column) else 0
        high = int(column.max()) if len(column) else 0
        if low == high and (fused or column is not columns[-1]):
            continue
        bits = high.bit_length()
        if low >= 0 and fused and width + bits <= 64:
            fused[-1] = (fused[-1].astype(np.uint64) << np.uint64(bits)) | column.astype(np.uint64)
            width += bits
        else:
            fused.append(column)
            width = bits if low >= 0 else 64
    return fused


def distinct_rows(
    columns: Sequence[npt.NDArray[np.int64]],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Sort rows given as columns (the first varies slowest): the order, and where each distinct row starts in it."""
    keys = sort_keys(columns)
    # One fused key (the usual case): argsort, several times quicker than lexsort. Its stable kind
    # (radix or timsort) takes runs already in order as they are: sorted runs put end to end (a
    # merge's) sort 7x quicker than with the default quicksort, and random keys as quickly.
    order = np.argsort(keys[0], kind="stable") if len(keys) == 1 else np.lexsort(keys[::-1])
    change = np.zeros(len(order), dtype=bool)
    change[:1] = True
    for key in keys:
        ordered = key[order]
        change[1:] |= ordered[1:] != ordered[:-1]
    return order, np.flatnonzero(change)


def _in_key_order(entries: Entries) -> bool:
    """True when each entry's key is above the one before (sorted, and every key once)."""
    if not (entries[1:, 0] >= entries[:-1, 0]).all():  # the usual "no", from one column
        return False
    step = entries[1:, :-1] - entries[:-1, :-1]
    moved = step != 0
    first = np.argmax(moved, axis=1)  # the first column where neighbours differ
    return bool(moved.any(axis=1).all() and (step[np.arange(len(step)), first] > 0).all())


def summed(entries: Entries, *, signed: bool = False) -> Entries:
    """Entries sorted by key, the counts of equal keys added up, entries at zero dropped.

    A count below zero is an error (more unlearned than learned), unless signed (a change to apply).
    """
    if not len(entries):
        return entries
    if _in_key_order(entries) and (signed or entries[:, -1].min() > 0) and entries[:, -1].all():
        return entries  # already summed (a batch's counts, a part of merged runs): no sort
    order, starts = distinct_rows([entries[:, c] for c in range(entries.shape[1] - 1)])
    out = entries[order[starts]]
    out[:, -1] = np.add.reduceat(entries[order, -1], starts)
    if not signed and len(out) and out[:, -1].min() < 0:
        raise ValueError("a count would go below zero: subtracted more than was learned")
    kept: Entries = out[out[:, -1] != 0]
    return kept


def owners(firsts: Sequence[bytes], entries: Entries) -> npt.NDArray[np.intp]:
    """For sorted entries, the index of the block each falls in (the last whose first key is not above it)."""
    if not firsts:
        return np.zeros(len(entries), dtype=np.intp)
    starts = np.array([struct.unpack(f">{len(f) // 4}I", f) for f in firsts], dtype=np.int64)
    keys = entries[:, :-1]
    # Sort the blocks' first keys among the entries' keys (a first key before an equal entry), and
    # count the first keys met up to each entry.
    both = np.concatenate([starts, keys])
    tag = np.concatenate([np.zeros(len(starts), dtype=np.int64), np.ones(len(keys), dtype=np.int64)])
    order = np.lexsort([tag, *both.T[::-1]])
    seen = np.cumsum(tag[order] == 0)
    found = np.empty(len(both), dtype=np.int64)
    found[order] = seen
    return np.maximum(found[len(starts) :] - 1, 0).astype(np.intp)


def runs(blocks: npt.NDArray[np.intp]) -> list[npt.NDArray[np.intp]]:
    """Distinct block indexes grouped into runs of consecutive ones."""
    distinct = np.unique(blocks)
    return np.split(distinct, np.flatnonzero(np.diff(distinct) > 1) + 1) if len(distinct) else []


# ---------------------------------------------------------------- reading (bot.core.reads: SQLite or PostgreSQL)


def with_prefix(entries: Entries, prefix: Sequence[int]) -> Entries:
    """The entries (sorted by key) whose key starts with prefix: a slice, found by binary search."""
    lo, hi = 0, len(entries)
    for c, value in enumerate(prefix):
        column = entries[lo:hi, c]
        lo, hi = (
            lo + int(np.searchsorted(column, value, "left")),
            lo + int(np.searchsorted(column, value, "right")),
        )
    return entries[lo:hi]


Cache = LRU[int, Entries]  # decoded blocks by id (ids are never reused; a forget changes blocks in place)
CACHED_BLOCKS = 1024  # decoded blocks a reader keeps (10 KB each)


def read_prefix(db: Reads, chain_id: int, order: int, direction: int, prefix: Sequence[int]) -> Entries:
    """A chain's block entries whose key (in the direction's order) starts with prefix."""
    lo, hi = prefix_range(prefix, order)
    return from_rows(db.rows("block_range", chain_id, direction, lo, hi), order, prefix)


def from_blocks(
    rows: Sequence[tuple[Any, Any]], order: int, prefix: Sequence[int], cache: Cache | None = None
) -> Entries:
    """The entries with prefix of blocks given as (id, data) in key order, decoded or from the cache."""
    parts = []
    for block_id, data in rows:
        held = cache.get(int(block_id)) if cache is not None else None
        if held is None:
            held = decode(bytes(data))
            if cache is not None:
                cache.put(int(block_id), held)
        parts.append(held)
    if not parts:
        return np.empty((0, width(order)), dtype=np.int64)
    return with_prefix(parts[0] if len(parts) == 1 else np.concatenate(parts), prefix)


def prefix_range(prefix: Sequence[int], order: int) -> tuple[bytes, bytes]:
    """(lo, hi) of the keys that start with prefix, as block_range takes them."""
    lo = key_bytes(prefix)
    return lo, lo + b"\xff" * 4 * (width(order) - 1 - len(prefix))


def from_rows(rows: Sequence[tuple[Any, ...]], order: int, prefix: Sequence[int]) -> Entries:
    """The entries with prefix of the blocks block_range gave."""
    if not rows:
        return np.empty((0, width(order)), dtype=np.int64)
    found, _ = decode_many([bytes(data) for (data,) in rows])
    return with_prefix(found, prefix)


def read_all(db: Reads, chain_id: int, order: int, direction: int, kind: Kind = TRANSITIONS) -> Entries:
    """Every block entry of a chain in a direction, sorted."""
    rows = db.rows(kind.statements + "block_all", chain_id, direction)
    if not rows:
        return np.empty((0, kind.width(order)), dtype=np.int64)
    found, _ = decode_many([bytes(data) for (data,) in rows])
    return found


def delta_forward(rows: Sequence[tuple[Any, ...]], order: int) -> Entries:
    """Rows of the transitions table (ctx, next, author, count) as forward entries."""
    if not rows:
        return np.empty((0, width(order)), dtype=np.int64)
    ctx = np.frombuffer(b"".join(bytes(r[0]) for r in rows), dtype=">u4").reshape(len(rows), order)
    rest = np.array([r[1:] for r in rows], dtype=np.int64)
    return summed(np.concatenate([ctx.astype(np.int64), rest], axis=1), signed=True)


def delta_backward(rows: Sequence[tuple[Any, ...]], order: int) -> Entries:
    """Rows of the transitions_back table (rest, next, author, count) as forward entries."""
    if not rows:
        return np.empty((0, width(order)), dtype=np.int64)
    rest = np.frombuffer(b"".join(bytes(r[0]) for r in rows), dtype=">u4").reshape(len(rows), order)
    ctx = np.roll(rest.astype(np.int64), 1, axis=1)  # rest is c2..cn, c1
    others = np.array([r[1:] for r in rows], dtype=np.int64)
    return summed(np.concatenate([ctx, others], axis=1), signed=True)


def rest_blobs(forward: Entries, order: int) -> list[bytes]:
    """Each forward entry's context rotated left by one token (c2..cn, c1), packed: transitions_back's rest."""
    rotated = np.roll(forward[:, :order], -1, axis=1)
    blobs: list[bytes] = np.ascontiguousarray(rotated.astype(">u4")).view(f"V{4 * order}").ravel().tolist()
    return blobs


def contexts(forward: Entries, order: int) -> npt.NDArray[np.void]:
    """The packed context of each forward entry, as the transitions table stores it (comparable, hashable)."""
    return np.ascontiguousarray(forward[:, :order].astype(">u4")).view(f"V{4 * order}").ravel()


def ctx_blobs(forward: Entries, order: int) -> list[bytes]:
    """The packed context of each forward entry, as bytes."""
    blobs: list[bytes] = contexts(forward, order).tolist()
    return blobs
