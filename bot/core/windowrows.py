"""A chain's window fingerprints as one view: its window blocks (bot.core.blocks, kind WINDOWS) plus
the windows delta rows not yet merged.

Every read of window fingerprints goes through here, over bot.core.reads (SQLite or PostgreSQL: the
walker's copy guard, the report's; a plain sqlite3 connection is taken too). A lookup finds, for
each fingerprint, the blocks that may hold it (SQLite: a query a fingerprint; PostgreSQL, where a
query is a round trip: a binary search over the chain's block index, kept per connection while the
blocks are unchanged), decodes them (or takes their keys from a cache) and searches them, and asks
the delta in one query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from bot.core import blocks
from bot.core.blocks import FORWARD, WINDOWS, Entries
from bot.core.lru import LRU
from bot.core.reads import Reads, of

Keys = npt.NDArray[np.uint64]  # fingerprints as unsigned keys (sign bit flipped): ordered as the blocks
_FLIP = np.uint64(2**63)


def keys_of(fps: Sequence[int] | npt.NDArray[np.int64]) -> Keys:
    """Fingerprints as the unsigned keys the blocks sort by (high, low bits as one number)."""
    flipped: Keys = np.asarray(fps, dtype=np.int64).view(np.uint64) ^ _FLIP
    return flipped


def _entry_keys(entries: Entries) -> Keys:
    joined: Keys = (entries[:, 0].astype(np.uint64) << np.uint64(32)) | entries[:, 1].astype(np.uint64)
    return joined


def every(db: Reads | sqlite3.Connection, chain_id: int) -> Entries:
    """Every window entry of a chain, blocks and delta summed: (fingerprint, author, count), sorted."""
    reads = of(db)
    with reads.snapshot():
        found = blocks.read_all(reads, chain_id, 0, FORWARD, WINDOWS)
        delta = blocks.window_entries(reads.rows("window_delta_all", chain_id))
    return every_of(blocks.summed(np.concatenate([found, delta])) if len(delta) else found)


def every_of(entries: Entries) -> Entries:
    """Window entries as (fingerprint, author, count)."""
    out: Entries = np.column_stack([blocks.join_fingerprints(entries[:, 0], entries[:, 1]), entries[:, 2:]])
    return out


CACHED_BLOCKS = 4096  # blocks a reader keeps the fingerprint keys of (2 KB each)


class WindowReader:
    """Looks fingerprints up in chains' window blocks and deltas, with caches; one thread at a time."""

    def __init__(self, cached_blocks: int = CACHED_BLOCKS) -> None:
        self._index: dict[int, tuple[int, npt.NDArray[np.int64], Keys]] = {}  # by chain, with its version
        self._keys: LRU[int, Keys] = LRU(cached_blocks)  # each block's keys, by id (never reused; see clear)

    def clear(self) -> None:
        """Forget what is cached (after blocks were rewritten in place: bot.core.blocks.Kind.in_place)."""
        self._index.clear()
        self._keys.clear()

    def _index_of(
        self, db: Reads, chain_id: int, known: int | None = None
    ) -> tuple[npt.NDArray[np.int64], Keys]:
        """A chain's window block ids and the first fingerprint key of each, in key order (known: the
        chain's window_version, when read already)."""
        if known is None:
            found = db.rows("window_version", chain_id)
            known = int(found[0][0]) if found else -1
        version = known
        held = self._index.get(chain_id)
        if held is not None and held[0] == version:
            return held[1], held[2]
        rows = db.rows(WINDOWS.statements + "block_index", chain_id, FORWARD)
        ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
        firsts: Keys = np.frombuffer(b"".join(bytes(r[1])[:8] for r in rows), dtype=">u8").astype(np.uint64)
        self._index[chain_id] = (version, ids, firsts)
        return ids, firsts

    def _candidates(self, db: Reads, chain_id: int, wanted: Keys, version: int | None = None) -> list[int]:
        """Ids (in key order) of the blocks that may hold these keys: for each, from the last block
        starting before it (its entries of the key may end that block) to the last starting at it
        (a key's authors may span blocks)."""
        if not db.combined:
            # A statement costs no round trip (SQLite): a query a key (0.08 ms for a guard check's 15)
            # rather than the index, which every write makes stale (read again: 24 ms at 1,000,000
            # messages, the first call after each live batch).
            found: dict[int, bytes] = {}
            for key in wanted.tolist():
                first = int(key).to_bytes(8, "big")
                rows = db.rows("window_block_candidates", chain_id, first, first + b"\xff" * 8)
                found.update((int(block_id), bytes(start)) for block_id, start in rows)
            return sorted(found, key=found.__getitem__)
        ids, firsts = self._index_of(db, chain_id, version)
        if not len(ids):
            return []
        los = np.maximum(np.searchsorted(firsts, wanted, "left") - 1, 0)
        his = np.searchsorted(firsts, wanted, "right") - 1
        spans = [range(lo, hi + 1) for lo, hi in zip(los.tolist(), his.tolist(), strict=True)]
        return [int(ids[b]) for b in sorted({b for span in spans for b in span})]

    def _block_keys(self, db: Reads, ids: list[int]) -> Keys | None:
        """The keys of these blocks (given in key order), one sorted array; from the cache, the rest
        read in one query. None when one is gone (the index was out of date)."""
        held = {i: found for i in ids if (found := self._keys.get(i)) is not None}
        missing = [i for i in ids if i not in held]
        if missing:
            for block_id, data in db.rows(WINDOWS.statements + "block_data_by_id", db.ids(missing)):
                held[int(block_id)] = keys = _entry_keys(blocks.decode(bytes(data), 2))
                self._keys.put(int(block_id), keys)
        if len(held) < len(ids):
            return None
        joined: Keys = np.concatenate([held[i] for i in ids] or [np.empty(0, dtype=np.uint64)])
        return joined

    def present(self, db: Reads | sqlite3.Connection, chain_id: int, fps: Sequence[int]) -> bool:
        """True when any of these fingerprints was learned in the chain (the copy guard's K-runs)."""
        if not fps:
            return False
        reads = of(db)
        if reads.combined:
            # The delta and the version in one statement: with the index of that version and blocks
            # (replaced by merges; changed in place only by a forget, which only takes entries
            # away), one committed state. A merge after it moves rows from the delta into new
            # blocks: the old ones' absence makes the index be read again.
            ((in_delta, version),) = reads.rows("windows_present_read", chain_id, reads.ids(fps))
            if in_delta:
                return True
            known = -1 if version is None else int(version)
            return bool(self._in_blocks(reads, chain_id, keys_of(fps), known).any())
        with reads.snapshot():
            if reads.rows("windows_present", chain_id, reads.ids(fps)):
                return True
            return bool(self._in_blocks(reads, chain_id, keys_of(fps)).any())

    def _in_blocks(
        self, db: Reads, chain_id: int, wanted: Keys, version: int | None = None
    ) -> npt.NDArray[np.bool_]:
        """Which of these keys the chain's blocks hold."""
        keys = self._block_keys(db, self._candidates(db, chain_id, wanted, version))
        if keys is None:  # blocks changed without a new version (a writer that did not say): read again
            self._index.pop(chain_id, None)
            keys = self._block_keys(db, self._candidates(db, chain_id, wanted))
            if keys is None:
                raise RuntimeError(f"chain {chain_id}'s window block index names blocks that are gone")
        if not len(keys):
            return np.zeros(len(wanted), dtype=bool)
        found: npt.NDArray[np.bool_] = (
            keys[np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)] == wanted
        )
        return found

    def multiplicity(
        self, db: Reads | sqlite3.Connection, chain_id: int, fps: Sequence[int]
    ) -> dict[int, tuple[int, int]]:
        """(times learned, authors) of each of these fingerprints learned in the chain (absent ones left out)."""
        if not fps:
            return {}
        distinct = sorted(set(fps))
        counts: dict[int, dict[int, int]] = {}
        reads = of(db)
        with reads.snapshot():
            wanted = keys_of(distinct)
            held = wanted[self._in_blocks(reads, chain_id, wanted)]  # only their blocks are decoded whole
            ids = self._candidates(reads, chain_id, held) if len(held) else []
            data_by_id = WINDOWS.statements + "block_data_by_id"
            rows = reads.rows(data_by_id, reads.ids(ids)) if ids else []
            delta = reads.rows("window_delta_of", chain_id, reads.ids(distinct))
        for _, data in rows:
            entries = blocks.decode(bytes(data))
            for fp, author_id, k in every_of(entries[np.isin(_entry_keys(entries), held)]).tolist():
                counts.setdefault(fp, {})[author_id] = k
        for fp, author_id, k in delta:
            mine = counts.setdefault(int(fp), {})
            mine[int(author_id)] = mine.get(int(author_id), 0) + int(k)
        return {fp: (sum(by.values()), len(by)) for fp, by in counts.items() if by}
