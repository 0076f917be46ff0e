"""The retention report's reads (bot.core.retention): sizes, the attack's steps and the full scans, typed."""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from bot.core.connections import Connections
from bot.core.sql import Q


class TableRows(NamedTuple):
    """Rows of the tables the byte shares are split by, over every chain."""

    transitions: int
    windows: int
    messages: int
    tokens: int


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


class Shape(NamedTuple):
    """A chain's transitions: what the state, forced-share and entropy figures are made of."""

    rows: int
    states: int
    pairs: int  # (state, successor) pairs, counts summed over authors
    forced: int  # count of transitions out of states with one successor
    total: int  # count of every transition
    state_log: float  # sum of T log2 T over states (T: a state's count)
    pair_log: float  # sum of c log2 c over pairs (c: a pair's count)


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

    def __init__(self, db: Connections, path: Path) -> None:
        self._db = db
        self._path = path

    async def _rows(self, name: str, *params: Any) -> list[tuple[Any, ...]]:
        async with self._db.r.execute(Q[name], params) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def table_bytes(self) -> dict[str, int]:
        """Bytes of each table and index (SQLite dbstat)."""
        return {str(name): int(size) for name, size in await self._rows("table_bytes")}

    async def table_rows(self) -> TableRows:
        """Rows of transitions, windows, messages and tokens, over every chain."""
        (row,) = await self._rows("table_rows")
        return TableRows(*(int(n) for n in row))

    async def window_rows(self, chain_id: int) -> int:
        """A chain's rows of K-run fingerprints."""
        ((n,),) = await self._rows("rows_windows", chain_id)
        return int(n)

    async def recent_rows(self, chain_id: int) -> tuple[int, int]:
        """Recent messages kept for the edit window: (of the chain, of every chain)."""
        ((mine, every),) = await self._rows("rows_recent", chain_id)
        return int(mine), int(every)

    async def vocabulary(self, chain_id: int) -> int:
        """Distinct tokens a chain can walk to."""
        ((n,),) = await self._rows("report_vocabulary", chain_id)
        return int(n)

    async def windows_present(self, chain_id: int, windows: Sequence[int]) -> bool:
        """True when any of these K-run fingerprints was learned in the chain."""
        return bool(await self._rows("windows_present", chain_id, json.dumps(list(windows))))

    async def top_successors(self, chain_id: int, ctx: bytes, limit: int) -> list[Branch]:
        """A context's `limit` most frequent successors, most frequent first (ties: larger id first)."""
        rows = await self._rows("top_successors", chain_id, ctx, limit)
        return [Branch(int(token), int(k), int(total)) for token, k, total in rows]

    async def message_multiplicity(self, chain_id: int, fingerprints: Sequence[int]) -> list[Multiplicity]:
        """How often each learned message among these exact fingerprints was said (absent ones left out)."""
        rows = await self._rows("message_multiplicity", chain_id, json.dumps(list(fingerprints)))
        return [Multiplicity(int(fp), int(times), int(authors)) for fp, times, authors in rows]

    async def exact_multiplicity(self, chain_id: int, fingerprint: int) -> Multiplicity | None:
        """How often the normalised form of the learned message with this exact fingerprint was said."""
        rows = await self._rows("exact_multiplicity", chain_id, fingerprint)
        return Multiplicity(int(rows[0][0]), int(rows[0][1]), int(rows[0][2])) if rows else None

    async def shape(self, chain_id: int) -> Shape:
        """A chain's transitions, counted (see Shape).

        The two full scans run at once, each on a short-lived read-only connection of its own in
        a thread (SQLite releases the GIL), so the reader stays free for the report's sampling
        and attack meanwhile.
        """
        states, pairs = await asyncio.gather(
            asyncio.to_thread(_read_row, self._path, Q["report_states"], (chain_id,)),
            asyncio.to_thread(_read_row, self._path, Q["report_pairs"], (chain_id,)),
        )
        rows, count, forced, total, state_log = states
        return Shape(
            int(rows), int(count), int(pairs[0]), int(forced), int(total), float(state_log), float(pairs[1])
        )

    async def learned_messages(
        self, chain_id: int, *, normalised: bool, times: int, authors: int, order: int
    ) -> LearnedMessages:
        """Distinct learned messages (under the normalised scheme: by normalised form), split by multiplicity.

        Common: said at least `times` times or by `authors` authors; longer: more tokens than `order`.
        A full scan, on a connection of its own in a thread.
        """
        name = "report_normal_messages" if normalised else "report_messages"
        row = await asyncio.to_thread(_read_row, self._path, Q[name], (chain_id, times, authors, order))
        return LearnedMessages(*(int(v or 0) for v in row))


def _read_row(path: Path, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
    """The first row of a read-only query, on a connection of its own (run in a worker thread)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA query_only = ON")
        try:
            conn.execute("SELECT log2(2)")
        except sqlite3.OperationalError:
            conn.create_function("log2", 1, math.log2, deterministic=True)
        return tuple(conn.execute(sql, params).fetchone())
    finally:
        conn.close()
