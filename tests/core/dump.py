"""A logical dump of a database: every table, with token ids and author ids replaced by what they mean.

Two databases that learned the same messages dump equal, whatever ids they assigned.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections import Counter
from pathlib import Path
from typing import Any

from bot.core import blocks, chainrows, hubs, keys, windowrows
from bot.core.sealed import Sealer
from bot.core.store import migrations


def recent_rows(db: sqlite3.Connection, key: bytes) -> list[tuple[str, str, int, int, bytes | None]]:
    """(platform, message id, chain id, author id, packed token ids or None if sealed otherwise) of recent rows."""
    sealer = Sealer(key)
    return [
        (p, m, int(c), int(a), sealer.open(p, m, bytes(x)))
        for p, m, c, a, x in db.execute(
            "SELECT platform, message_id, chain_id, author_id, token_ids FROM recent_messages"
        )
    ]


def database_key(path: Path, key: bytes | None = None) -> bytes:
    """The fingerprint key of a database: the one given, else its key file's."""
    if key is not None:
        return key
    found = keys.read_file(keys.key_file(path))
    assert found is not None, f"no key given and no key file beside {path}"
    return found


def logical_dump(path: Path, key: bytes | None = None) -> dict[str, Any]:
    """Everything the database holds, independent of id assignment (key: to open recent rows)."""
    db = sqlite3.connect(path)
    try:
        tokens = {i: t for i, t in db.execute("SELECT id, text FROM tokens")}
        tokens[0], tokens[1] = "<BEGIN>", "<END>"
        authors = {
            i: (p, g, e) for i, p, g, e in db.execute("SELECT id, platform, guild, external_id FROM authors")
        }
        chains = {
            i: (p, g, c) for i, p, g, c in db.execute("SELECT id, platform, guild, channel FROM chains")
        }

        def ctx(blob: bytes) -> tuple[str, ...]:
            return tuple(tokens[i] for i in struct.unpack(f">{len(blob) // 4}I", blob))

        return {
            "tokens": Counter({t: r for t, r in db.execute("SELECT text, refs FROM tokens")}),
            "chains": sorted(
                (chains[i], o, k, m, t, c, b)
                for i, o, k, m, t, c, b in db.execute(
                    "SELECT id, ord, run_length, messages_seen, tokens_seen, chars_seen, bytes_seen FROM chains"
                )
                if m  # a chain row that learned nothing is an empty shell
            ),
            "transitions": Counter(
                {(chains[c], authors[a], ctx(x), tokens[n]): k for c, x, n, a, k in transition_rows(db)}
            ),
            "windows": Counter({(chains[c], f, authors[a]): k for c, f, a, k in window_rows(db)}),
            "messages": sorted(
                (p, m, chains[c], authors[a], f, nf, t, ch, b)
                for p, m, c, a, f, nf, t, ch, b in db.execute(
                    "SELECT platform, message_id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes "
                    "FROM messages"
                )
            ),
            # learned_at is left out: two databases that learned the same messages at other times dump equal.
            "recent_messages": sorted(
                (p, m, chains[c], authors[a], ctx(x) if x is not None else None)
                for p, m, c, a, x in (recent_rows(db, database_key(path, key)) if has_recent(db) else [])
            ),
            "authors_with_data": sorted({authors[a] for _, _, _, a, _ in transition_rows(db)}),
        }
    finally:
        db.close()


def transition_rows(db: sqlite3.Connection) -> list[tuple[int, bytes, int, int, int]]:
    """(chain, context, next, author, count) of every chain, blocks and delta rows summed (bot.core.chainrows)."""
    rows = []
    for chain_id, order in db.execute("SELECT id, ord FROM chains").fetchall():
        entries = chainrows.every(db, chain_id, order)
        rows.extend(
            zip(
                [chain_id] * len(entries),
                blocks.ctx_blobs(entries, order),
                entries[:, order].tolist(),
                entries[:, order + 1].tolist(),
                entries[:, -1].tolist(),
                strict=True,
            )
        )
    return rows


def window_rows(db: sqlite3.Connection) -> list[tuple[int, int, int, int]]:
    """(chain, fingerprint, author, count) of every chain, blocks and delta rows summed (bot.core.windowrows)."""
    rows = []
    for (chain_id,) in db.execute("SELECT id FROM chains").fetchall():
        rows.extend((chain_id, f, a, k) for f, a, k in windowrows.every(db, chain_id).tolist())
    return rows


def has_recent(db: sqlite3.Connection) -> bool:
    """True when the database holds recent rows (only then is its key needed)."""
    return db.execute("SELECT 1 FROM recent_messages LIMIT 1").fetchone() is not None


def hub_errors(path: Path) -> list[tuple[int, bytes]]:
    """Hubs whose packed successors differ from their transitions summed over authors."""
    db = sqlite3.connect(path)
    try:
        wrong = []
        for chain_id, ctx, ids, counts in db.execute("SELECT * FROM hubs").fetchall():
            packed = hubs.decode(ids, counts)
            summed = list(zip(*chainrows.successors(db, chain_id, bytes(ctx)), strict=True))
            if list(zip(*packed, strict=True)) != summed:
                wrong.append((chain_id, ctx))
        return wrong
    finally:
        db.close()


def hub_count(path: Path) -> int:
    """How many hubs the database holds."""
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT count(*) FROM hubs").fetchone()[0])
    finally:
        db.close()


def downgrade(path: Path, version: int) -> None:
    """Rewrite a database in the schema of an older version: its tables, with the columns they had then."""
    old = path.with_name(path.name + ".old")
    db = sqlite3.connect(old)
    try:
        for number, sql in migrations():
            if number <= version:
                db.executescript(sql)
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("ATTACH DATABASE ? AS current", (str(path),))
        tables = [name for (name,) in db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = ", ".join(row[1] for row in db.execute(f'PRAGMA main.table_info("{table}")'))
            db.execute(f'DELETE FROM main."{table}"')  # rows a migration seeded come from the copy
            db.execute(f'INSERT INTO main."{table}" ({columns}) SELECT {columns} FROM current."{table}"')
        if "transition_blocks" not in tables:  # before blocks, every count was a row of transitions
            with contextlib.closing(sqlite3.connect(path)) as current:
                rows = transition_rows(current)
            db.execute("DELETE FROM main.transitions")
            db.executemany("INSERT INTO main.transitions VALUES (?, ?, ?, ?, ?)", rows)
        if "window_blocks" not in tables:  # before window blocks, every window was a row of windows
            with contextlib.closing(sqlite3.connect(path)) as current:
                windows = window_rows(current)
            db.execute("DELETE FROM main.windows")
            db.executemany("INSERT INTO main.windows VALUES (?, ?, ?, ?)", windows)
        db.commit()
        db.execute("DETACH DATABASE current")
    finally:
        db.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    old.replace(path)
