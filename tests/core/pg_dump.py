"""A logical dump of a PostgreSQL database, in the form of tests.core.dump.logical_dump (SQLite's).

Token, author and chain ids are replaced by what they mean, blocks and delta rows are summed: two
databases that learned the same messages dump equal, whatever engine or ids.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any

import asyncpg
import numpy as np

from bot.core import blocks, windowrows
from bot.core.blocks import BACKWARD, FORWARD, WINDOWS
from bot.core.sealed import Sealer
from tests.core import pg_blockrows as blockrows


async def pg_logical_dump(url: str, key: bytes) -> dict[str, Any]:
    """Everything the database holds, independent of id assignment (key: to open recent rows)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):  # one state of it
            return await _dump(conn, key)
    finally:
        await conn.close()


async def _dump(conn: asyncpg.Connection, key: bytes) -> dict[str, Any]:
    tokens: dict[int, str] = {int(i): str(t) for i, t in await conn.fetch("SELECT id, text FROM tokens")}
    tokens[0], tokens[1] = "<BEGIN>", "<END>"
    authors = {
        int(i): (p, g, e)
        for i, p, g, e in await conn.fetch("SELECT id, platform, guild, external_id FROM authors")
    }
    chains = {
        int(i): (p, g, c)
        for i, p, g, c in await conn.fetch("SELECT id, platform, guild, channel FROM chains")
    }

    def ctx(blob: bytes) -> tuple[str, ...]:
        return tuple(tokens[i] for i in struct.unpack(f">{len(blob) // 4}I", blob))

    transitions: Counter[tuple[Any, ...]] = Counter()
    windows: Counter[tuple[Any, ...]] = Counter()
    with_data: set[tuple[str, str, str]] = set()
    for chain_id, order in await conn.fetch("SELECT id, ord FROM chains"):
        found = await blockrows.read_all(conn, chain_id, order, FORWARD)
        delta = await conn.fetch(
            "SELECT ctx, next_id, author_id, count FROM transitions WHERE chain_id = $1", chain_id
        )
        every = blocks.summed(np.concatenate([found, blocks.delta_forward([tuple(r) for r in delta], order)]))
        back = await blockrows.read_all(conn, chain_id, order, BACKWARD)
        back_delta = await conn.fetch(
            "SELECT rest, next_id, author_id, count FROM transitions_back WHERE chain_id = $1", chain_id
        )
        twin = blocks.summed(
            np.concatenate(
                [
                    blocks.to_forward(back, order, BACKWARD),
                    blocks.delta_backward([tuple(r) for r in back_delta], order),
                ]
            )
        )
        assert np.array_equal(twin, every), f"chain {chain_id}: backward counts differ from forward"
        for ctx_blob, entry in zip(blocks.ctx_blobs(every, order), every.tolist(), strict=True):
            next_id, author_id, k = entry[order:]
            transitions[(chains[chain_id], authors[author_id], ctx(ctx_blob), tokens[next_id])] = k
            with_data.add(authors[author_id])
        found = await blockrows.read_all(conn, chain_id, 0, FORWARD, WINDOWS)
        rows = await conn.fetch(
            "SELECT fingerprint, author_id, count FROM windows WHERE chain_id = $1", chain_id
        )
        summed = blocks.summed(np.concatenate([found, blocks.window_entries([tuple(r) for r in rows])]))
        for f, a, k in windowrows.every_of(summed).tolist():
            windows[(chains[chain_id], f, authors[a])] = k
    sealer = Sealer(key)
    recent = [
        (int(i), chains[c], authors[a], sealer.open(int(i), bytes(x)))
        for i, c, a, x in await conn.fetch("SELECT id, chain_id, author_id, token_ids FROM recent_messages")
    ]
    return {
        "tokens": Counter({str(t): int(r) for t, r in await conn.fetch("SELECT text, refs FROM tokens")}),
        "chains": sorted(
            (chains[i], o, k, m, t, c, b)
            for i, o, k, m, t, c, b in await conn.fetch(
                "SELECT id, ord, run_length, messages_seen, tokens_seen, chars_seen, bytes_seen FROM chains"
            )
            if m
        ),
        "transitions": transitions,
        "windows": windows,
        "messages": sorted(
            (i, chains[c], authors[a], f, nf, t, ch, b)
            for i, c, a, f, nf, t, ch, b in await conn.fetch(
                "SELECT id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes FROM messages"
            )
        ),
        "recent_messages": sorted((i, c, a, ctx(x) if x is not None else None) for i, c, a, x in recent),
        "authors_with_data": sorted(with_data),
    }


async def pg_counts(url: str) -> dict[str, int]:
    """Rows of the tables a forget or a reset must leave empty of a member or chain."""
    conn = await asyncpg.connect(url)
    try:
        names = (
            "tokens",
            "chains",
            "authors",
            "messages",
            "recent_messages",
            "transitions",
            "transitions_back",
            "windows",
            "hubs",
        )
        return {name: int(await conn.fetchval(f"SELECT count(*) FROM {name}")) for name in names}
    finally:
        await conn.close()
