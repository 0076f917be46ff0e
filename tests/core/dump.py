"""A logical dump of a database: every table, with token ids and author ids replaced by what they mean.

Two databases that learned the same messages dump equal, whatever ids they assigned.
"""

from __future__ import annotations

import contextlib
import sqlite3
import struct
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bot.core import blocks, chainrows, hubs, keys, windowrows
from bot.core.messagekeys import message_key
from bot.core.schema import MIGRATION_FUNCTIONS
from bot.core.sealed import Sealer, id_bound
from bot.core.store import migrations


def recent_rows(
    db: sqlite3.Connection, key: bytes, ids: Iterable[tuple[str, str]] = ()
) -> list[tuple[int, int, int, bytes | None]]:
    """(message key, chain id, author id, packed token ids or None if sealed otherwise) of recent rows.

    ids: the (platform, message id) of rows sealed before migration 0011 (bound to them, not the key).
    """
    sealer = Sealer(key)
    named = {message_key(*i): i for i in ids}
    return [
        (int(i), int(c), int(a), sealer.open(int(i), bytes(x), named.get(int(i))))
        for i, c, a, x in db.execute("SELECT id, chain_id, author_id, token_ids FROM recent_messages")
    ]


def database_key(path: Path, key: bytes | None = None) -> bytes:
    """The fingerprint key of a database: the one given, else its key file's."""
    if key is not None:
        return key
    found = keys.read_file(keys.key_file(path))
    assert found is not None, f"no key given and no key file beside {path}"
    return found


def logical_dump(path: Path, key: bytes | None = None, ids: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """Everything the database holds, independent of id assignment (key, ids: to open recent rows)."""
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
                (i, chains[c], authors[a], f, nf, t, ch, b)
                for i, c, a, f, nf, t, ch, b in db.execute(
                    "SELECT id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes FROM messages"
                )
            ),
            # learned_at is left out: two databases that learned the same messages at other times dump equal.
            "recent_messages": sorted(
                (i, chains[c], authors[a], ctx(x) if x is not None else None)
                for i, c, a, x in (recent_rows(db, database_key(path, key), ids) if has_recent(db) else [])
            ),
            "authors_with_data": sorted({authors[a] for _, _, _, a, _ in transition_rows(db)}),
        }
    finally:
        db.close()


def transition_rows(db: sqlite3.Connection) -> list[tuple[int, bytes, int, int, int]]:
    """(chain, context, next, author, count) of every chain, blocks and delta rows summed (bot.core.chainrows)."""
    rows = []
    backward = "transitions_back" in {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
    for chain_id, order in db.execute("SELECT id, ord FROM chains").fetchall():
        entries = chainrows.every(db, chain_id, order)
        if backward:  # the backward blocks and delta hold the same counts as the forward ones
            twin = chainrows.every_backward(db, chain_id, order)
            assert np.array_equal(twin, entries), f"chain {chain_id}: backward counts differ from forward"
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


def has_recent(db: sqlite3.Connection, schema: str = "main") -> bool:
    """True when the database holds recent rows (only then is its key needed)."""
    return db.execute(f"SELECT 1 FROM {schema}.recent_messages LIMIT 1").fetchone() is not None


def _downgrade_recent(db: sqlite3.Connection, key: bytes) -> None:
    """Recent rows keyed by (platform, message_id) and sealed bound to them, as before 0011."""
    sealer = Sealer(key)
    rows = db.execute(
        "SELECT r.id, platform, message_id, chain_id, author_id, learned_at, token_ids "
        "FROM current.recent_messages AS r JOIN temp.learned_ids USING (id)"
    ).fetchall()
    assert len(rows) == db.execute("SELECT count(*) FROM current.recent_messages").fetchone()[0]
    for i, p, m, c, a, t, x in rows:
        data = sealer.open(i, bytes(x))
        assert data is not None, "a recent row does not open with the key given"
        db.execute(
            "INSERT INTO main.recent_messages (platform, message_id, chain_id, author_id, learned_at, token_ids) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (p, m, c, a, t, sealer.seal(0, data, id_bound(p, m))),
        )


def counts_without_rows(dump: dict[str, Any]) -> list[str]:
    """A dump's counts its message rows do not cover (a forget skips chains without the member's rows)."""
    rows = Counter(m[1] for m in dump["messages"])
    seen = {c: m for c, _, _, m, *_ in dump["chains"]}
    wrong = [
        f"{c}: {seen.get(c, 0)} messages seen, {rows[c]} rows"
        for c in seen.keys() | rows.keys()
        if seen.get(c, 0) != rows[c]
    ]
    written = {(m[1], m[2]) for m in dump["messages"]}
    counted = {(k[0], k[1]) for k in dump["transitions"]} | {(k[0], k[2]) for k in dump["windows"]}
    wrong += [f"{c}: counts of {a} and no message row" for c, a in counted - written]
    return sorted(wrong)


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


def downgrade(
    path: Path, version: int, ids: Iterable[tuple[str, str]] = (), key: bytes | None = None
) -> None:
    """Rewrite a database in the schema of an older version: its tables, with the columns they had then.

    Before 0011 messages and recent messages were keyed by (platform, message_id), which a key does
    not give back: ids names every (platform, message id) learned, and a learned message missing from
    it fails. Recent rows are sealed again bound to their id, as then (key: the fingerprint key).
    """
    old = path.with_name(path.name + ".old")
    db = sqlite3.connect(old)
    for name, arguments, function in MIGRATION_FUNCTIONS:
        db.create_function(name, arguments, function)
    try:
        for number, sql in migrations():
            if number <= version:
                db.executescript(sql)
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("ATTACH DATABASE ? AS current", (str(path),))
        db.execute("CREATE TEMP TABLE learned_ids (id INTEGER PRIMARY KEY, platform TEXT, message_id TEXT)")
        db.executemany(
            "INSERT OR IGNORE INTO temp.learned_ids VALUES (?, ?, ?)", ((message_key(*i), *i) for i in ids)
        )
        tables = [name for (name,) in db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = ", ".join(row[1] for row in db.execute(f'PRAGMA main.table_info("{table}")'))
            db.execute(f'DELETE FROM main."{table}"')  # rows a migration seeded come from the copy
            source = f'current."{table}"'
            if table == "messages" and "platform" in columns:
                source = "current.messages AS m JOIN temp.learned_ids USING (id)"
                learned = db.execute("SELECT count(*) FROM current.messages").fetchone()[0]
                named = db.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
                assert named == learned, f"{learned - named} learned messages have no id in ids"
            if table == "recent_messages" and "platform" in columns:
                _downgrade_recent(db, database_key(path, key) if has_recent(db, "current") else b"")
                continue
            db.execute(f'INSERT INTO main."{table}" ({columns}) SELECT {columns} FROM {source}')
        if "transition_blocks" not in tables:  # before blocks, every count was a row of transitions
            with contextlib.closing(sqlite3.connect(path)) as current:
                rows = transition_rows(current)
            db.execute("DELETE FROM main.transitions")
            db.executemany("INSERT INTO main.transitions VALUES (?, ?, ?, ?, ?)", rows)
        if version < 14:  # before 0014, every window was a K-run (each message's form: its row's normal)
            with contextlib.closing(sqlite3.connect(path)) as current:
                windows = Counter({(c, f, a): k for c, f, a, k in window_rows(current)})
                forms = current.execute(
                    "SELECT chain_id, normal, author_id, count(*) FROM messages "
                    "WHERE normal IS NOT NULL GROUP BY chain_id, normal, author_id"
                ).fetchall()
            windows.subtract({(c, f, a): k for c, f, a, k in forms})
            assert min(windows.values(), default=1) >= 0, (
                "a form counted among the windows less than its rows"
            )
            db.execute("DELETE FROM main.windows")  # every window a delta row: merges make the blocks
            if "window_blocks" in tables:
                db.execute("DELETE FROM main.window_blocks")
            db.executemany(
                "INSERT INTO main.windows VALUES (?, ?, ?, ?)", ((*w, k) for w, k in windows.items() if k)
            )
        db.commit()
        db.execute("DETACH DATABASE current")
    finally:
        db.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    old.replace(path)
