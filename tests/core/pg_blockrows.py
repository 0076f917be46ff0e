"""Reading a chain's blocks alone from PostgreSQL, async (the block tests' view; the walker reads through
bot.core.reads, blocks and delta rows summed).

Each read is one statement, so it sees one committed state of the blocks, whatever writers commit
meanwhile. Entries come back as chainrows gives them: forward column order, each key once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.core import blocks, windowrows
from bot.core.blocks import BACKWARD, FORWARD, TRANSITIONS, WINDOWS, Entries, Kind
from bot.core.postgres.schema import PQ

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    PgReader = asyncpg.Connection[Any] | asyncpg.Pool[Any] | PoolConnectionProxy[Any]


async def read_all(
    conn: PgReader, chain_id: int, order: int, direction: int, kind: Kind = TRANSITIONS
) -> Entries:
    """Every block entry of a chain in a direction, sorted."""
    rows = await conn.fetch(PQ[kind.statements + "block_all"], chain_id, direction)
    if not rows:
        return np.empty((0, kind.width(order)), dtype=np.int64)
    found: Entries = np.concatenate([blocks.decode(bytes(r[0])) for r in rows])
    return found


async def read_prefix(
    conn: PgReader, chain_id: int, order: int, direction: int, prefix: Sequence[int]
) -> Entries:
    """A chain's block entries whose key (in the direction's order) starts with prefix."""
    lo, hi = blocks.prefix_range(prefix, order)
    rows = await conn.fetch(PQ["block_range"], chain_id, direction, lo, hi)
    return blocks.from_rows([tuple(r) for r in rows], order, prefix)


async def every(conn: PgReader, chain_id: int, order: int) -> Entries:
    """Every entry of a chain, sorted by key."""
    return await read_all(conn, chain_id, order, FORWARD)


async def backward(
    conn: PgReader, chain_id: int, order: int, next_id: int, suffix: Sequence[int] | None
) -> Entries:
    """Entries leading into next_id (from contexts ending in suffix, when given), in forward column order."""
    found = await read_prefix(conn, chain_id, order, BACKWARD, [next_id, *(suffix or ())])
    return blocks.summed(blocks.to_forward(found, order, BACKWARD))


async def following(conn: PgReader, chain_id: int, order: int, context: Sequence[int]) -> Entries:
    """The entries of one context (what may follow it), sorted: a walk's step."""
    return await read_prefix(conn, chain_id, order, FORWARD, context)


async def windows(conn: PgReader, chain_id: int) -> Entries:
    """Every window entry of a chain: (fingerprint, author, count), sorted by fingerprint."""
    return windowrows.every_of(await read_all(conn, chain_id, 0, FORWARD, WINDOWS))
