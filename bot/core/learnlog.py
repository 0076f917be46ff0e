"""The learning log: each live batch committed, sealed, to a small file of its own, applied later.

Live learning's cost is the main file's commit: every commit rewrites nearly every page of the
rolling deltas (bot.core.rolling) and a page of each index per message, whatever the batch's size.
So the flusher commits each batch here, one sealed blob in a file of a few pages (durable within a
second, as before), and the writer applies what the log holds to the main file in one transaction
once the one before is done: under load several batches at once, each delta page written once for
all of them (benchmarks/README.md has the figures).

The main file records the last entry it applied (meta ``learning_log_applied``) in the applying
transaction, so a crash at any moment replays exactly the entries after it, on the next open.
Entries are sealed (bot.core.sealed, under a key of their own derived from the fingerprint key):
the log's file alone reads back no message. Applied entries are deleted and zeroed, and the log's
WAL is emptied into its file after each apply. One process holds the log (an exclusive lock); a
second one on the same database commits its batches to the main file directly.

The log also keeps, sealed apart from the batches, each change a member asked for that the main
file could not take yet (bot.core.deferred: a delete while an import holds it, say) until it is
done; the next open hands back those still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from bot.core import background, deferred, schema
from bot.core.connections import pragma
from bot.core.deferred import Deferred
from bot.core.models import ChainInfo, PendingMessage
from bot.core.schema import StoreError
from bot.core.sealed import Sealer
from bot.core.sql import Q

log = logging.getLogger(__name__)

APPLIED_META = "learning_log_applied"  # the main file's meta key: the last entry it applied
FORMAT = 2  # the log file's user_version (0: a new file, or a log made before it had one; 2: deferred)
PERSON = b"markovbot-log"  # what the log's sealer is derived for (bot.core.sealed)
DEFERRED_PERSON = b"markovbot-defer"  # ... and the deferred changes' sealer
TABLES = frozenset({"entries", "deferred"})
Entry = tuple[int, list[PendingMessage]]  # (seq, the batch)


def log_path(db_path: Path) -> Path:
    """Where the learning log of a database lives: beside it."""
    return db_path.with_name(db_path.name + "-learning")


def encode(batch: Sequence[PendingMessage]) -> bytes:
    """A batch as the bytes an entry seals (everything its messages are learned from): a JSON array.

    A message at a time: json.dumps over a whole batch of 2,000 held the interpreter lock for
    17 ms and more in one C call, while the event loop waited to answer.
    """
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    fields = [
        dumps(
            [
                m.platform,
                m.message_id,
                [m.chain.id, m.chain.order, m.chain.run_length, m.chain.scheme],
                m.author_id,
                m.tokens,
                m.fingerprint,
                m.normal,
                m.windows,
                m.chars,
                m.bytes,
                m.keep,
                m.key,
            ]
        )
        for m in batch
    ]
    return ("[" + ",".join(fields) + "]").encode("utf-8", "surrogatepass")


def decode(data: bytes) -> list[PendingMessage]:
    """The batch encode() made."""
    return [
        PendingMessage(
            platform,
            message_id,
            ChainInfo(*chain),
            author_id,
            tuple(tokens),
            fingerprint,
            normal,
            tuple(windows),
            chars,
            size,
            keep,
            hashed=key,
        )
        for (
            platform,
            message_id,
            chain,
            author_id,
            tokens,
            fingerprint,
            normal,
            windows,
            chars,
            size,
            keep,
            key,
        ) in json.loads(data.decode("utf-8", "surrogatepass"))
    ]


def unapplied(db_path: Path, applied: int) -> int:
    """Entries the learning log of a database holds after applied (0: none, no log, or a bot holds it)."""
    return _count(db_path, "log_unapplied", applied)


def kept_changes(db_path: Path) -> int:
    """Changes the learning log of a database keeps for later (bot.core.deferred; 0: none, no log, a log
    from before they were kept, or a bot holds it)."""
    return _count(db_path, "log_deferred_count")


def _count(db_path: Path, statement: str, *args: object) -> int:
    """A count statement's answer on the learning log of a database, read only (0 when it cannot be read)."""
    path = log_path(db_path)
    if not path.exists():
        return 0
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0)
        ) as conn:
            (n,) = conn.execute(Q[statement], args).fetchone()
    except sqlite3.Error:
        # held by a running bot (what it holds is its queue), not a log, or no such table yet
        return 0
    return int(n)


class LearningLog:
    """The log's file, held by this process: append a batch, read back what is unapplied, drop what is."""

    def __init__(self, path: Path, key: bytes, *, in_background: bool = False) -> None:
        self.path = path
        self._factory = background.factory(in_background)  # its thread below the event loop, or level
        self._sealer = Sealer(key, PERSON)
        self._deferred_sealer = Sealer(key, DEFERRED_PERSON)
        self._conn: aiosqlite.Connection | None = None
        self._next = 1  # the next entry's seq (only this process writes the file: it holds the lock)
        self._next_deferred = 1  # never reused while this process runs: a change being made holds its number

    async def open(self, applied: int) -> list[Entry] | None:
        """Take the log (None when another process holds it); the entries after applied, to replay."""
        # timeout 0: held by another process, fail rather than wait
        conn = await aiosqlite.connect(self.path, isolation_level=None, timeout=0, factory=self._factory)
        try:
            await pragma(conn, "locking_mode = EXCLUSIVE")  # held from the first write until close
            await conn.execute("BEGIN IMMEDIATE")  # fails at once when another process holds it
            _, version, tables = await schema.describe(conn)
            refused = self._refusal(version, tables)
            if refused:
                await conn.execute("ROLLBACK")  # a file refused is left as it was
                raise StoreError(refused)
            await conn.execute(Q["log_schema"])
            await conn.execute(Q["log_deferred_schema"])
            await conn.execute(f"PRAGMA user_version = {FORMAT}")
            await conn.execute("COMMIT")
            await pragma(conn, "journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await pragma(conn, "secure_delete = ON")  # an applied entry's bytes are zeroed, not freed
        except sqlite3.DatabaseError as exc:
            await conn.close()
            if "locked" not in str(exc):
                raise StoreError(
                    f"the learning log {self.path} cannot be used ({exc}): move it away to start without "
                    "the batches it holds"
                ) from exc
            log.info("another process holds the learning log: its batches go to the database directly")
            return None
        except StoreError:
            await conn.close()
            raise
        self._conn = conn
        rows = await conn.execute_fetchall(Q["log_entries"], (applied,))
        (last,) = next(iter(await conn.execute_fetchall(Q["log_last"])))
        self._next = max(int(last), applied) + 1
        entries: list[Entry] = []
        for seq, sealed in rows:
            data = self._sealer.open(int(seq), bytes(sealed))
            if data is None:  # sealed under another key: not this database's
                log.warning("learning log entry %d does not open with this database's key: skipped", seq)
                continue
            entries.append((int(seq), decode(data)))
        await self.drop(applied)
        return entries

    def _refusal(self, version: int, tables: set[str]) -> str | None:
        """Why a file found at the log's path must not be used as this markovbot's log (None: it may)."""
        if version > FORMAT:
            return (
                f"the learning log {self.path} was written by a newer markovbot (format {version}, this "
                f"one reads {FORMAT}), left untouched: run that version, or move the log away to start "
                "without the batches it holds"
            )
        if tables - TABLES:
            return (
                f"the learning log {self.path} is another program's SQLite database, left untouched: "
                "move it away"
            )
        return None

    @property
    def conn(self) -> aiosqlite.Connection:
        """The log's connection."""
        if self._conn is None:
            raise RuntimeError("the learning log is not open")
        return self._conn

    async def append(self, batch: Sequence[PendingMessage]) -> int:
        """Commit a batch as the next entry; its seq."""
        seq = self._next
        # in a thread: the event loop goes on answering while a batch is encoded and sealed
        sealed = await asyncio.to_thread(lambda: self._sealer.seal(seq, encode(batch)))
        await self.conn.execute(Q["log_append"], (seq, sealed))  # autocommit: one transaction
        self._next = seq + 1
        return seq

    async def defer(self, change: Deferred) -> int:
        """Keep a change the main file could not take yet (committed now); its number."""
        conn = self.conn
        (last,) = next(iter(await conn.execute_fetchall(Q["log_deferred_last"])))
        number = max(int(last) + 1, self._next_deferred)
        self._next_deferred = number + 1
        sealed = self._deferred_sealer.seal(number, deferred.encode(change))
        await conn.execute(Q["log_defer"], (number, sealed))
        return number

    async def deferred(self) -> list[tuple[int, Deferred]]:
        """The changes kept, oldest first (one that does not open with this key is skipped)."""
        found = []
        for number, sealed in await self.conn.execute_fetchall(Q["log_deferred"]):
            data = self._deferred_sealer.open(int(number), bytes(sealed))
            if data is None:
                log.warning("deferred change %d does not open with this database's key: skipped", number)
                continue
            found.append((int(number), deferred.decode(data)))
        return found

    async def done(self, number: int) -> None:
        """Drop a change kept by defer() once it is done (its bytes zeroed, the WAL emptied)."""
        await self.conn.execute(Q["log_undefer"], (number,))
        await pragma(self.conn, "wal_checkpoint(TRUNCATE)")

    async def drop(self, through: int) -> None:
        """Delete the entries up to through (applied), and empty the log's WAL into its file."""
        await self.conn.execute(Q["log_drop"], (through,))
        await pragma(self.conn, "wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        """Let the log go (what it holds stays, for the next open to replay)."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def take(
    db_path: Path, key: bytes, applied: int, *, in_background: bool = False
) -> tuple[LearningLog, list[Entry]] | None:
    """The learning log of a database, held by this process, and its entries after applied, to replay
    (None: another process holds it). in_background: its thread runs below the event loop
    (bot.core.background)."""
    log_ = LearningLog(log_path(db_path), key, in_background=in_background)
    replay = await log_.open(applied)
    return None if replay is None else (log_, replay)
