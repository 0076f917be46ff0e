"""The retention report's reads (bot.core.retention): sizes, the attack's steps and the full scans, typed.

On SQLite the small reads run on the store's reader (aiosqlite) and the numpy ones on a sqlite3
connection of the report's own; on PostgreSQL every read goes through bot.core.reads (asyncpg on
an event loop of the report thread's own), with the same statements' names.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from bot.core import blocks, chainrows, reads, windowrows
from bot.core import chain as chainmod
from bot.core.chainrows import Shape as Shape
from bot.core.connections import Connections
from bot.core.engines import PostgresUrl
from bot.core.lru import LRU
from bot.core.sql import Q


class TableRows(NamedTuple):
    """Rows of the tables the byte shares are split by, over every chain (transitions: the delta's)."""

    transitions: int
    windows: int
    messages: int
    tokens: int


class Scanned(NamedTuple):
    """What one full read of a chain's transitions gives the report."""

    shape: Shape
    vocabulary: int  # distinct tokens the chain can walk to


class BlockBytes(NamedTuple):
    """Bytes of transition blocks: a chain's, and every chain's."""

    chain: int
    every: int


T = TypeVar("T")


class Branch(NamedTuple):
    """One of a context's most frequent successors (see Reports.top_successors)."""

    token: int
    frequency: int  # times the context was followed by the token
    total: int  # the context's count over all its successors


class Multiplicity(NamedTuple):
    """How often a learned message was said, and by how many authors."""

    fingerprint: int
    times: int
    authors: int


class LearnedMessages(NamedTuple):
    """Distinct learned messages, and those longer than the order; each with its said-once and common part."""

    distinct: int
    eidetic: int
    common: int
    longer: int
    longer_eidetic: int
    longer_common: int


class Reports:
    """Read-only statements for the report: on the reader, or (full scans) on connections of their own."""

    def __init__(self, db: Connections | None, where: Path | str) -> None:
        self._db = (
            db  # SQLite's reader (None on PostgreSQL: its reads go through the report's own connection)
        )
        self._where = where  # a SQLite file, or a PostgreSQL URL string
        self._pg = isinstance(reads.database(where), PostgresUrl)
        if db is None and not self._pg:
            raise ValueError("a SQLite store's report reads on the store's connections")
        # Transition reads (bot.core.chainrows) are numpy over blocks: on a connection of their
        # own, in a thread of their own, opened on first use and closed with the store.
        self._thread: ThreadPoolExecutor | None = None
        self._conn: reads.Reads | None = None
        self._blocks: blocks.Cache = LRU(blocks.CACHED_BLOCKS)
        self._windows = windowrows.WindowReader()
        self._removals: dict[int, int] = {}  # per chain: its removals when the two caches were current

    async def _entries(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(reads, *args) on the reports' own connection and thread."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="markov-reports")
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, fn, args)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._conn is None:
            self._conn = _connect(self._where)
        return fn(self._conn, *args)

    async def close(self) -> None:
        """Close the reports' connection and stop its thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._close)
            await asyncio.to_thread(thread.shutdown)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _rows(self, name: str, *params: Any) -> list[tuple[Any, ...]]:
        if self._pg or self._db is None:  # PostgreSQL: the store's Connections are SQLite's, unused
            return await self._entries(_named, name, params)
        async with self._db.r.execute(Q[name], params) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    def _ids(self, values: Sequence[int]) -> Any:
        """A list of ids as a statement's parameter: a JSON array on SQLite, a bigint[] on PostgreSQL."""
        return [int(v) for v in values] if self._pg else json.dumps(list(values))

    async def table_bytes(self) -> dict[str, int]:
        """Bytes of each table and index (SQLite dbstat)."""
        return {str(name): int(size) for name, size in await self._rows("table_bytes")}

    async def table_rows(self) -> TableRows:
        """Rows of transitions, windows, messages and tokens, over every chain."""
        (row,) = await self._rows("table_rows")
        return TableRows(*(int(n) for n in row))

    async def window_rows(self, chain_id: int) -> int:
        """A chain's K-run fingerprint entries (delta rows and block entries)."""
        ((n,),) = await self._rows("rows_windows", chain_id)
        return int(n)

    async def recent_rows(self, chain_id: int) -> tuple[int, int]:
        """Recent messages kept for the edit window: (of the chain, of every chain)."""
        ((mine, every),) = await self._rows("rows_recent", chain_id)
        return int(mine), int(every)

    async def delta_rows(self, chain_id: int) -> int:
        """A chain's transition rows not yet merged into blocks."""
        ((n,),) = await self._rows("rows_delta", chain_id)
        return int(n)

    async def block_bytes(self, chain_id: int) -> BlockBytes:
        """Bytes of a chain's transition blocks, and of every chain's."""
        ((mine, every),) = await self._rows("block_bytes", chain_id)
        return BlockBytes(int(mine or 0), int(every or 0))

    async def windows_present(self, chain_id: int, windows: Sequence[int]) -> bool:
        """True when any of these fingerprints was learned in the chain's window set (see refresh)."""
        return await self._entries(self._windows.present, chain_id, list(windows))

    async def top_successors(self, chain_id: int, ctx: bytes, limit: int) -> list[Branch]:
        """A context's `limit` most frequent successors, most frequent first (ties: larger id first;
        see refresh)."""
        return await self._entries(_top_successors, chain_id, ctx, limit, self._blocks)

    async def refresh(self, chain_id: int) -> None:
        """Before a run of windows_present and top_successors (once: the attack makes thousands):
        drop the blocks and K-run keys they cache by id if the chain's removals changed since
        (a forget rewrites blocks in place, ids kept)."""
        rows = await self._rows("chain_removals", chain_id)
        removals = int(rows[0][0]) if rows else -1
        if self._removals.setdefault(chain_id, removals) != removals:
            await self._entries(self._clear)  # in the thread that reads through them
            self._removals[chain_id] = removals

    def _clear(self, conn: reads.Reads) -> None:
        self._blocks.clear()
        self._windows.clear()

    async def message_multiplicity(
        self, chain_id: int, fingerprints: Sequence[int], *, normalised: bool
    ) -> list[Multiplicity]:
        """How often each learned message among these whole fingerprints (normalised: scheme 2's, kept
        among the chain's windows; else exact) was said, and by how many authors (absent ones left out)."""
        if normalised:
            found = await self._entries(self._windows.multiplicity, chain_id, list(fingerprints))
            return [Multiplicity(fp, times, authors) for fp, (times, authors) in sorted(found.items())]
        rows = await self._rows("message_multiplicity", chain_id, self._ids(fingerprints))
        return [Multiplicity(int(fp), int(times), int(authors)) for fp, times, authors in rows]

    async def learned_fingerprints(self, chain_id: int, fingerprints: Sequence[int]) -> set[int]:
        """Which of these exact fingerprints the chain learned: one read of its message rows, on the
        reports' own connection (the store's reader answers the bot meanwhile)."""
        if not fingerprints:
            return set()
        rows = await self._entries(_named, "learned_fingerprints", (chain_id, self._ids(fingerprints)))
        return {int(fp) for (fp,) in rows}

    async def scan(self, chain_id: int, order: int) -> Scanned:
        """A chain's transitions counted (see chainrows.Shape), and its vocabulary: one full read, on a
        connection of its own."""
        return await asyncio.to_thread(_scan, self._where, chain_id, order)

    async def learned_messages(
        self, chain_id: int, *, normalised: bool, times: int, authors: int, order: int
    ) -> LearnedMessages:
        """Distinct learned messages (under the normalised scheme: by normalised form), split by multiplicity.

        Common: said at least `times` times or by `authors` authors; longer: more tokens than `order`.
        A full scan, on a connection of its own in a thread.
        """
        name = "report_normal_messages" if normalised else "report_messages"
        row = await asyncio.to_thread(_read_row, self._where, name, (chain_id, times, authors, order))
        return LearnedMessages(*(int(v or 0) for v in row))


def _connect(where: Path | str) -> reads.Reads:
    """A read-only connection (made in the thread that uses it)."""
    url = reads.database(where)
    if isinstance(url, PostgresUrl):
        return reads.connect(where)
    conn = sqlite3.connect(url.path)
    conn.execute("PRAGMA query_only = ON")
    try:
        conn.execute("SELECT log2(2)")
    except sqlite3.OperationalError:
        conn.create_function("log2", 1, math.log2, deterministic=True)
    return reads.SqliteReads(conn)


def _named(db: reads.Reads, name: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.rows(name, *params)]


def _read_row(where: Path | str, name: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    """The first row of a named read-only statement, on a connection of its own (run in a worker thread)."""
    conn = _connect(where)
    try:
        return tuple(conn.rows(name, *params)[0])
    finally:
        conn.close()


def _scan(where: Path | str, chain_id: int, order: int) -> Scanned:
    conn = _connect(where)
    whole = [chainrows.Shape(0, 0, 0, 0, 0, 0.0, 0.0)]
    seen: set[int] = set()

    def visit(chunk: chainrows.Entries) -> None:
        whole.append(chainrows.shape(chunk, order))
        nexts = chunk[:, order]
        seen.update(np.unique(nexts[nexts > chainmod.END]).tolist())

    try:
        chainrows.scan(conn, chain_id, order, visit)
    finally:
        conn.close()
    total = whole[0]
    for part in whole[1:]:
        total = chainrows.add_shapes(total, part)
    return Scanned(total, len(seen))


def _top_successors(
    conn: reads.Reads, chain_id: int, ctx: bytes, limit: int, cache: blocks.Cache
) -> list[Branch]:
    """The extraction attack's branches: a context's most frequent successors (ties: larger id first)."""
    rows = list(zip(*chainrows.successors(conn, chain_id, ctx, cache=cache), strict=True))
    total = sum(k for _, k in rows)
    top = sorted(rows, key=lambda row: (-row[1], -row[0]))[:limit]
    return [Branch(token, k, total) for token, k in top]
