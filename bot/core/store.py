"""The SQLite store: one writer connection with a batched queue, and readers beside it.

Learning is queued and committed in batches (one transaction per batch, at most every
``flush_interval`` seconds or ``batch_size`` messages, and on close), so a crash loses at
most the batch not yet committed. Reads go through a second connection, and generation walks
on a thread or in a process of its own with a third (see bot.core.walker); in WAL mode none of
them waits for the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiosqlite

from bot.core import chain as chainmod
from bot.core import fingerprints, keys, schema
from bot.core import hubs as hubmod
from bot.core.chain import Choices
from bot.core.connections import Connections
from bot.core.guildstate import GuildState
from bot.core.lru import LRU
from bot.core.models import (
    ChainInfo,
    ChainKey,
    ChainSummary,
    FlushResult,
    ForgetResult,
    GuildSettings,
    PendingMessage,
    UnlearnStatus,
)

# Re-exported: callers import these from here.
from bot.core.schema import APPLICATION_ID as APPLICATION_ID
from bot.core.schema import LEGACY_TABLES as LEGACY_TABLES
from bot.core.schema import SCHEMA_VERSION as SCHEMA_VERSION
from bot.core.schema import WAL_SWITCH_SECONDS as WAL_SWITCH_SECONDS
from bot.core.schema import NotMarkovbotDatabase as NotMarkovbotDatabase
from bot.core.schema import SchemaTooNew as SchemaTooNew
from bot.core.schema import StoreError as StoreError
from bot.core.schema import migrations as migrations
from bot.core.sealed import Sealer
from bot.core.sql import Q, tune_sqlite
from bot.core.walker import Version, Walker, WalkerDied, WalkerProcess

log = logging.getLogger(__name__)


WALKERS = ("thread", "process")  # where generation walks (see bot.core.walker)
# Defaults, here once (bot.config reads these names for the bot's settings).
FLUSH_INTERVAL = 1.0  # seconds between commits of queued learning, at most
BATCH_SIZE = 2000  # messages per transaction, at most
MAX_PENDING = 20_000  # queued messages from which learning waits
CACHE_SIZE = 50_000  # entries per cache (token ids, texts, walked states)
WALKER = "thread"  # a Store opened by a script or a test: needs no `if __name__ == "__main__":`
BOT_WALKER = "process"  # the bot: walks take no turns on the interpreter lock with the event loop
WRITER_CACHE_KIB = 65_536  # the writer's SQLite page cache (the default 2 MB makes upserts seek)
HUB_ROWS = 1000  # transition rows from which a context becomes a hub (see bot.core.hubs)
HUBS_IN_MEMORY = 1024  # hubs the writer keeps unpacked between commits
EDIT_WINDOW_DAYS = 7  # days a learned message's token ids are kept for a delete or edit after a restart
PRUNE_SECONDS = 60.0  # the writer drops recent messages past the window at most this often ...
PRUNE_ROWS = 10_000  # ... and at most this many per transaction (then again at the next flush)
# SQLite's codes for a write the disk refused: no space left (ENOSPC), or the file may not grow (EFBIG).
DISK_FULL_CODES = frozenset({13, 778})  # SQLITE_FULL, SQLITE_IOERR_WRITE


def _aggregate(
    batch: Sequence[PendingMessage], ids: dict[str, int]
) -> tuple[
    list[tuple[tuple[int, bytes, int, int], int]],
    list[tuple[tuple[int, int, int], int]],
    Counter[int],
    dict[int, list[int]],
]:
    """Count a batch: transition rows, window rows (both sorted by key), token refs, chain counters.

    Sorted rows make each statement walk its B-tree in key order (2x faster than random order).
    """
    trans: Counter[tuple[int, bytes, int, int]] = Counter()
    windows: Counter[tuple[int, int, int]] = Counter()
    refs: Counter[int] = Counter()
    counters: dict[int, list[int]] = {}
    for item in batch:
        chain_id, author_id = item.chain.id, item.author_id
        token_ids = [ids[t] for t in item.tokens]
        trans.update(
            (chain_id, ctx, nxt, author_id) for ctx, nxt in chainmod.transitions(token_ids, item.chain.order)
        )
        refs.update(token_ids)
        windows.update((chain_id, fp, author_id) for fp in item.windows)
        c = counters.setdefault(chain_id, [0, 0, 0, 0])
        c[0] += 1
        c[1] += len(item.tokens)
        c[2] += item.chars
        c[3] += item.bytes
    return sorted(trans.items()), sorted(windows.items()), refs, counters


HubKey = tuple[int, bytes]  # (chain id, context)


def _by_context(
    rows: Iterable[tuple[tuple[int, bytes, int, int], int]], hubs: set[HubKey]
) -> tuple[dict[HubKey, Counter[int]], Counter[HubKey]]:
    """Split transition rows by context: counts per successor for hubs, occurrences of the rest."""
    deltas: dict[HubKey, Counter[int]] = {}
    seen: Counter[HubKey] = Counter()
    for (chain_id, ctx, next_id, _), k in rows:
        key = (chain_id, ctx)
        if key in hubs:
            deltas.setdefault(key, Counter())[next_id] += k
        else:
            seen[key] += k
    return deltas, seen


class Store:
    """Owns the database: migrations, the batched writer, typed reads and caches."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        flush_interval: float = FLUSH_INTERVAL,
        batch_size: int = BATCH_SIZE,
        max_pending: int = MAX_PENDING,
        cache_size: int = CACHE_SIZE,
        key: bytes | None = None,
        walker: str = WALKER,
        hub_rows: int = HUB_ROWS,
        edit_window_days: int = EDIT_WINDOW_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._given_key = key  # the fingerprint key, or None: the key file beside the database
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._db = Connections()
        self._guilds = GuildState(self._db)
        if walker not in WALKERS:
            raise ValueError(f"walker must be one of {', '.join(WALKERS)}, not {walker!r}")
        self.walker = walker
        self.cache_size = cache_size
        if hub_rows < 1:
            raise ValueError(f"hub_rows must be at least 1, not {hub_rows}")
        self.hub_rows = hub_rows
        if edit_window_days < 0:
            raise ValueError(f"edit_window_days must be 0 or more, not {edit_window_days}")
        self.edit_window_days = edit_window_days
        self.clock = clock  # unix seconds: when a message was learned, and when its row expires
        self._next_prune = -math.inf
        self._hubs: set[HubKey] = set()  # (chain id, context) of every hub
        self._hub_arrays: LRU[HubKey, hubmod.Packed] = LRU(HUBS_IN_MEMORY)
        # Contexts counted and found narrow: how many rows each still lacked (a row per occurrence at most).
        self._hub_short: LRU[HubKey, int] = LRU(cache_size)
        self._hubs_changed = False  # in the open transaction
        # The writer's caches describe the file as of data_version (None: drop them at the next
        # transaction, e.g. after one failed); another connection's commit changes it.
        self._data_version: int | None = None
        self._hub_version = 0  # bumped after each commit or rollback that changed hubs (tells the walker)
        # The walker: in a process of its own, or a Walker on a thread of this process.
        self._process: WalkerProcess | None = None
        self._walker: Walker | None = None
        self._thread: ThreadPoolExecutor | None = None
        self.walker_pid: int | None = None  # the walker process, when there is one
        self._pending: list[PendingMessage] = []
        self._pending_ids: set[tuple[str, str]] = set()
        self._room = asyncio.Condition()
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._token_ids: LRU[str, int] = LRU(cache_size)  # the writer's, revalidated per transaction
        self._token_texts: LRU[int, str] = LRU(cache_size)  # ids are never reused: true forever
        self._generation: Counter[int] = Counter()  # bumped on every write to a chain
        self._chains: dict[ChainKey, ChainInfo] = {}
        self._authors: dict[tuple[str, str, str], int] = {}
        self.last_error: str | None = None
        self.key = b""  # the fingerprint key (bot.core.keys), once open
        self._sealer: Sealer | None = None  # seals recent messages with a key derived from it
        #: Totals since open: messages committed, and messages dropped as already learned.
        self.committed = 0
        self.duplicates = 0

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> Store:
        """Open both connections, apply migrations, start the flusher."""
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # A path SQLite cannot open fails here, before aiosqlite starts a worker thread: aiosqlite
        # 0.22 leaves a failed connect's stop future unawaited, and its thread then reports to a
        # closed event loop (omnilib/aiosqlite#389).
        tune_sqlite()
        # Checked before anything writes: a file the store refuses is left byte for byte.
        await asyncio.to_thread(schema.check_file, self.path)
        await asyncio.to_thread(schema.probe, self.path)
        self._db.writer = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await self.w.execute("PRAGMA busy_timeout = 5000")
            await schema.enable_wal(self.w)
            await self.w.execute("PRAGMA synchronous = NORMAL")
            await self.w.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            await schema.migrate(self.w, self.path)
            await self.w.execute(Q["create_hub_candidates"])
            self._db.reader = await aiosqlite.connect(self.path, isolation_level=None)
            await self.r.execute("PRAGMA busy_timeout = 5000")
            await self.r.execute("PRAGMA query_only = ON")
            self.key = await self._load_key()
            self._sealer = Sealer(self.key)
            await self._ensure_math(self.r)
            await self._start_walker()
        except BaseException:
            await self._close_connections()
            raise
        self._flusher = asyncio.create_task(self._flush_loop(), name="markov-flusher")
        return self

    async def close(self) -> None:
        """Flush what is pending, stop the flusher and close both connections."""
        if self._flusher is not None:
            # Stopped by a flag, not cancelled: on Python 3.11 a cancel that races the wake-up
            # event can be swallowed by the wait, and the flusher would never end.
            self._closing = True
            self._wake.set()
            await self._flusher
            self._flusher = None
        try:
            if self._writer is not None:
                await self.flush()
        finally:
            await self._close_connections()

    async def _close_connections(self) -> None:
        await self._stop_walker()
        for conn in (self._db.reader, self._db.writer):
            if conn is not None:
                await conn.close()
        self._db.reader = self._db.writer = None

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _writer(self) -> aiosqlite.Connection | None:
        """The writer connection, or None when the store is not open."""
        return self._db.writer

    @property
    def w(self) -> aiosqlite.Connection:
        """The writer connection."""
        return self._db.w

    @property
    def r(self) -> aiosqlite.Connection:
        """The reader connection."""
        return self._db.r

    @staticmethod
    async def _ensure_math(conn: aiosqlite.Connection) -> None:
        """Provide log2 where SQLite was built without its math functions."""
        try:
            await conn.execute("SELECT log2(2)")
        except sqlite3.OperationalError:
            await conn.create_function("log2", 1, math.log2, deterministic=True)

    async def _load_key(self) -> bytes:
        """The fingerprint key, checked against the database's check value (see bot.core.keys).

        A database from before the key file keeps its key as a salt in meta: it is written to the
        key file (durably) first, then removed from meta in one transaction, so a crash between
        the two leaves both, and the next open completes the move.
        """
        async with self.w.execute(Q["get_meta"], (keys.OLD_SALT_META,)) as cur:
            row = await cur.fetchone()
        salt = str(row[0]) if row else None
        async with self.w.execute(Q["get_meta"], (keys.CHECK_META,)) as cur:
            row = await cur.fetchone()
        check = str(row[0]) if row else None
        try:
            key = await asyncio.to_thread(keys.resolve, self.path, self._given_key, salt=salt, check=check)
        except keys.KeyRefused as exc:
            raise StoreError(str(exc)) from None
        if salt is not None or check is None:
            await self._store_key_check(key, drop_salt=salt is not None)
        return key

    async def _store_key_check(self, key: bytes, *, drop_salt: bool) -> None:
        """Record the key's check value and drop an old salt, zeroing its bytes in the file."""
        await self.w.execute("PRAGMA secure_delete = ON")
        await self.w.execute("BEGIN IMMEDIATE")
        try:
            await self.w.execute(Q["set_meta"], (keys.CHECK_META, keys.check_value(key)))
            if drop_salt:
                await self.w.execute(Q["delete_meta"], (keys.OLD_SALT_META,))
            await self.w.execute("COMMIT")
        except BaseException:
            if self.w.in_transaction:
                await self.w.execute("ROLLBACK")
            raise
        finally:
            await self.w.execute("PRAGMA secure_delete = OFF")
        if drop_salt:
            # The old page (with the salt) would stay in the main file until the next checkpoint.
            await self.w.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    async def get_meta(self, key: str) -> str | None:
        """A value from the meta table."""
        async with self.r.execute(Q["get_meta"], (key,)) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        """Store a value in the meta table."""
        async with self._db.write_lock:
            await self.w.execute(Q["set_meta"], (key, value))

    # ---------------------------------------------------------------- chains and authors

    async def find_chain(self, key: ChainKey) -> ChainInfo | None:
        """The chain's row, or None when nothing was ever learned there."""
        info = self._chains.get(key)
        if info is None:
            async with self.r.execute(Q["chain_by_key"], (key.platform, key.guild, key.channel)) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            info = self._chains[key] = ChainInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3]))
        return info

    async def chain(self, key: ChainKey, settings: GuildSettings) -> ChainInfo:
        """The chain's row, created with the guild's order and run length if new."""
        info = await self.find_chain(key)
        if info is not None:
            return info
        found: list[ChainInfo] = []

        async def work() -> None:
            async with self.w.execute(Q["chain_by_key"], (key.platform, key.guild, key.channel)) as cur:
                row = await cur.fetchone()
            if row is None:
                chain_id = await self._take_ids("next_chain_id", 1)
                scheme = fingerprints.CURRENT
                await self.w.execute(
                    Q["insert_chain"],
                    (
                        chain_id,
                        key.platform,
                        key.guild,
                        key.channel,
                        settings.order,
                        settings.run_length,
                        scheme,
                    ),
                )
                found.append(ChainInfo(chain_id, settings.order, settings.run_length, scheme))
            else:
                found.append(ChainInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3])))

        async with self._db.write_lock:
            await self._transaction(work)
            self._chains[key] = found[0]
        return found[0]

    async def all_chains(self) -> list[ChainSummary]:
        """Every chain of the database, with what it has learned."""
        async with self.r.execute(Q["all_chains"]) as cur:
            rows = await cur.fetchall()
        return [
            ChainSummary(ChainKey(p, g, c), int(m), int(t), None if at is None else int(at))
            for p, g, c, m, t, at in rows
        ]

    async def chain_author_ids(self, chain_id: int, limit: int) -> list[str]:
        """External ids of up to limit authors with messages learned in a chain."""
        async with self.r.execute(Q["chain_author_ids"], (chain_id, limit)) as cur:
            return [str(row[0]) for row in await cur.fetchall()]

    async def chains_of_guild(self, platform: str, guild: str) -> list[int]:
        """Ids of every chain of a guild."""
        async with self.r.execute(Q["chains_of_guild"], (platform, guild)) as cur:
            return [int(row[0]) for row in await cur.fetchall()]

    async def find_author(self, platform: str, guild: str, external_id: str) -> int | None:
        """The author's internal id, or None."""
        key = (platform, guild, external_id)
        if key in self._authors:
            return self._authors[key]
        async with self.r.execute(Q["author_by_key"], key) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        self._authors[key] = int(row[0])
        return self._authors[key]

    async def author(self, platform: str, guild: str, external_id: str) -> int:
        """The author's internal id, created if new."""
        found = await self.find_author(platform, guild, external_id)
        if found is not None:
            return found
        key = (platform, guild, external_id)
        made: list[int] = []

        async def work() -> None:
            async with self.w.execute(Q["author_by_key"], key) as cur:
                row = await cur.fetchone()
            if row is None:
                author_id = await self._take_ids("next_author_id", 1)
                await self.w.execute(Q["insert_author"], (author_id, *key))
                made.append(author_id)
            else:
                made.append(int(row[0]))

        async with self._db.write_lock:
            await self._transaction(work)
            self._authors[key] = made[0]
        return made[0]

    # ---------------------------------------------------------------- consent, channels, settings

    async def consenting(self, platform: str, guild: str) -> set[str]:
        """Members of a guild who opted in."""
        return await self._guilds.consenting(platform, guild)

    async def set_consent(self, platform: str, guild: str, member: str, opted_in: bool) -> bool:
        """Opt a member in or out; True when that changed something."""
        return await self._guilds.set_consent(platform, guild, member, opted_in)

    async def enabled_channels(self, platform: str, guild: str) -> set[str]:
        """Channels of a guild where learning is enabled."""
        return await self._guilds.enabled_channels(platform, guild)

    async def set_channel(self, platform: str, guild: str, channel: str, enabled: bool) -> bool:
        """Enable or disable learning in a channel; True when that changed something."""
        return await self._guilds.set_channel(platform, guild, channel, enabled)

    async def settings(self, platform: str, guild: str) -> GuildSettings:
        """A guild's settings (defaults when never changed)."""
        return await self._guilds.settings(platform, guild)

    async def put_settings(self, platform: str, guild: str, settings: GuildSettings) -> None:
        """Save a guild's settings (validated by the caller)."""
        await self._guilds.put_settings(platform, guild, settings)

    # ---------------------------------------------------------------- the batched writer

    @property
    def pending(self) -> int:
        """Messages queued and not yet committed."""
        return len(self._pending)

    def is_pending(self, platform: str, message_id: str) -> bool:
        """True when the message is queued for the next flush."""
        return (platform, message_id) in self._pending_ids

    async def enqueue(self, message: PendingMessage) -> bool:
        """Queue a message for learning, waiting while the queue is full; False if already queued."""
        key = (message.platform, message.message_id)
        async with self._room:
            await self._room.wait_for(lambda: len(self._pending) < self.max_pending)
            if key in self._pending_ids:
                return False
            self._pending.append(message)
            self._pending_ids.add(key)
        if len(self._pending) >= self.batch_size:
            self._wake.set()
            await asyncio.sleep(0)  # let the flusher start on the batch while we go on
        return True

    async def _flush_loop(self) -> None:
        backoff = self.flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                await self.flush()
                backoff = self.flush_interval
            except StoreError:
                backoff = min(30.0, backoff * 2)
                log.warning("learning paused, retrying in %.0f s: %s", backoff, self.last_error)
            except Exception:
                backoff = min(30.0, backoff * 2)
                log.exception("flush failed; learning paused, retrying in %.0f s", backoff)

    async def flush(self) -> FlushResult:
        """Commit everything queued, in batches of at most batch_size messages."""
        learned = duplicates = 0
        async with self._db.write_lock:
            while self._pending:
                batch = self._pending[: self.batch_size]
                try:
                    result = await self._commit(batch)
                except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
                    full = getattr(exc, "sqlite_errorcode", None) in DISK_FULL_CODES
                    self.last_error = f"disk full ({exc})" if full else str(exc)
                    raise StoreError(f"could not write to {self.path}: {self.last_error}") from exc
                self.last_error = None
                self.committed += result.learned
                self.duplicates += result.duplicates
                learned += result.learned
                duplicates += result.duplicates
                async with self._room:
                    del self._pending[: len(batch)]
                    for item in batch:
                        self._pending_ids.discard((item.platform, item.message_id))
                    self._room.notify_all()
            if self.clock() >= self._next_prune:
                try:
                    await self._prune()
                except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
                    self.last_error = str(exc)
                    raise StoreError(f"could not write to {self.path}: {exc}") from exc
        return FlushResult(learned, duplicates)

    async def _prune(self) -> None:
        """Drop recent messages learned before the window, in one bounded transaction (write lock held)."""
        now = self.clock()
        cutoff = now - self.edit_window_days * 86_400 if self.edit_window_days else math.inf
        dropped = [0]
        async with self.w.execute(Q["recent_expired"], (cutoff,)) as cur:
            expired = await cur.fetchone() is not None
        if not expired:  # the usual case: no write transaction (and none on a read-only file)
            self._next_prune = now + PRUNE_SECONDS
            return

        async def work() -> None:
            async with self.w.execute(Q["prune_recent"], (cutoff, PRUNE_ROWS)) as cur:
                dropped[0] = cur.rowcount

        await self._transaction(work)
        # A full prune leaves more behind: go on at the next flush rather than in a minute.
        self._next_prune = now if dropped[0] >= PRUNE_ROWS else now + PRUNE_SECONDS
        if dropped[0]:
            log.debug("dropped %d recent messages past the %d-day window", dropped[0], self.edit_window_days)

    async def _commit(self, batch: Sequence[PendingMessage]) -> FlushResult:
        fresh: list[PendingMessage] = []

        async def work() -> None:
            fresh.extend(await self._drop_orphans(await self._drop_known(batch)))
            if fresh:
                await self._apply(fresh, sign=1)

        await self._transaction(work)
        return FlushResult(len(fresh), len(batch) - len(fresh))

    async def _drop_known(self, batch: Sequence[PendingMessage]) -> list[PendingMessage]:
        by_platform: dict[str, list[str]] = {}
        for item in batch:
            by_platform.setdefault(item.platform, []).append(item.message_id)
        known: set[tuple[str, str]] = set()
        for platform, ids in by_platform.items():
            async with self.w.execute(Q["known_message_ids"], (platform, json.dumps(ids))) as cur:
                known.update((platform, str(row[0])) for row in await cur.fetchall())
        return [item for item in batch if (item.platform, item.message_id) not in known]

    async def _drop_orphans(self, batch: list[PendingMessage]) -> list[PendingMessage]:
        """Messages whose chain and author still exist (another process may have reset or forgotten them)."""
        if not batch:
            return batch
        present = []
        for name, wanted in (
            ("existing_chains", {item.chain.id for item in batch}),
            ("existing_authors", {item.author_id for item in batch}),
        ):
            async with self.w.execute(Q[name], (json.dumps(sorted(wanted)),)) as cur:
                present.append({int(row[0]) for row in await cur.fetchall()})
        kept = [item for item in batch if item.chain.id in present[0] and item.author_id in present[1]]
        if len(kept) < len(batch):
            log.info(
                "dropped %d queued messages: their member was forgotten or chain reset",
                len(batch) - len(kept),
            )
        return kept

    async def _resolve(self, texts: Iterable[str], create: bool) -> dict[str, int]:
        """Token ids for texts (on the writer), creating the missing ones when asked.

        New ids follow the order in which texts first occur (not a set's, which varies with
        PYTHONHASHSEED), taken from the database's counter inside the open transaction.
        """
        ids: dict[str, int] = {}
        missing: list[str] = []
        for text in dict.fromkeys(texts):
            cached = self._token_ids.get(text)
            if cached is None:
                missing.append(text)
            else:
                ids[text] = cached
        if missing:
            async with self.w.execute(Q["tokens_by_text"], (json.dumps(missing),)) as cur:
                for token_id, text in await cur.fetchall():
                    ids[text] = int(token_id)
            unknown = [text for text in missing if text not in ids]
            if create and unknown:
                first = await self._take_ids("next_token_id", len(unknown))
                new = [(first + i, text) for i, text in enumerate(unknown)]
                await self.w.executemany(Q["insert_token"], new)
                ids.update((text, token_id) for token_id, text in new)
            for text in missing:
                if text in ids:
                    self._token_ids.put(text, ids[text])
        return ids

    async def _take_ids(self, counter: str, n: int) -> int:
        """Reserve n ids from a counter of the database, inside the open transaction; the first."""
        async with self.w.execute(Q["take_ids"], (n, counter)) as cur:
            row = await cur.fetchone()
        assert row is not None, f"the counters table has no {counter}"
        return int(row[0])

    async def _apply(self, batch: Sequence[PendingMessage], sign: int) -> None:
        """Add (sign=1) or subtract (sign=-1) messages' counts, inside the open transaction."""
        ids = await self._resolve((t for item in batch for t in item.tokens), create=sign > 0)
        # Counting is pure Python: done in a thread so the event loop keeps answering meanwhile.
        trans_rows, window_rows, refs, counters = await asyncio.to_thread(_aggregate, batch, ids)
        w = self.w
        if sign > 0:
            await w.executemany(Q["upsert_transition"], ((*key, k) for key, k in trans_rows))
            await w.executemany(Q["upsert_window"], ((*key, k) for key, k in window_rows))
            await w.executemany(
                Q["insert_message"],
                (
                    (
                        i.platform,
                        i.message_id,
                        i.chain.id,
                        i.author_id,
                        i.fingerprint,
                        i.normal,
                        len(i.tokens),
                        i.chars,
                        i.bytes,
                    )
                    for i in batch
                ),
            )
            if self.edit_window_days:
                now = int(self.clock())
                sealer = self.sealer
                await w.executemany(
                    Q["insert_recent"],
                    (
                        (
                            i.platform,
                            i.message_id,
                            i.chain.id,
                            i.author_id,
                            now,
                            sealer.seal(i.platform, i.message_id, _pack_tokens(i.tokens, ids)),
                        )
                        for i in batch
                        if i.keep
                    ),
                )
        else:
            await w.executemany(Q["subtract_transition"], ((k, *key) for key, k in trans_rows))
            await w.executemany(Q["subtract_window"], ((k, *key) for key, k in window_rows))
            await w.executemany(Q["prune_transition"], (key for key, _ in trans_rows))
            await w.executemany(Q["prune_window"], (key for key, _ in window_rows))
            await w.executemany(Q["delete_message"], ((i.platform, i.message_id) for i in batch))
            await w.executemany(Q["delete_recent"], ((i.platform, i.message_id) for i in batch))
        deltas, seen = await asyncio.to_thread(_by_context, trans_rows, self._hubs)
        await self._add_to_hubs(deltas, sign)
        if sign > 0:
            await self._promote_hubs(seen, len(batch))
        await self._add_refs({token_id: sign * n for token_id, n in refs.items()})
        await w.executemany(
            Q["add_chain_counters"], ((*(sign * v for v in c), chain_id) for chain_id, c in counters.items())
        )
        if sign > 0:
            now = int(self.clock())
            await w.executemany(Q["chain_learned_at"], ((now, chain_id) for chain_id in counters))
        for chain_id in counters:
            self._generation[chain_id] += 1

    async def _add_refs(self, refs: dict[int, int]) -> None:
        await self.w.executemany(Q["add_token_refs"], ((n, token_id) for token_id, n in refs.items() if n))
        if any(n < 0 for n in refs.values()):
            dropped = [token_id for token_id, n in refs.items() if n < 0]
            async with self.w.execute(Q["delete_unused_tokens"], (json.dumps(dropped),)) as cur:
                for token_id, text in await cur.fetchall():
                    self._token_ids.pop(text)
                    self._token_texts.pop(int(token_id))

    # ---------------------------------------------------------------- hubs

    async def _load_hubs(self) -> None:
        """Read which contexts are hubs (in a transaction whose caches were dropped)."""
        async with self.w.execute(Q["all_hubs"]) as cur:
            self._hubs = {(int(c), bytes(x)) for c, x in await cur.fetchall()}
        self._hub_arrays.clear()
        self._hubs_changed = True

    def _publish_hubs(self) -> None:
        """After a commit or rollback: if hubs were made or dropped, tell the walker to look again."""
        if self._hubs_changed:
            self._hubs_changed = False
            self._hub_version += 1

    async def _hub(self, key: HubKey) -> hubmod.Packed:
        packed = self._hub_arrays.get(key)
        if packed is None:
            async with self.w.execute(Q["hub"], key) as cur:
                row = await cur.fetchone()
            packed = hubmod.decode(row[0], row[1]) if row else hubmod.from_rows(())
            self._hub_arrays.put(key, packed)
        return packed

    async def _add_to_hubs(self, deltas: dict[HubKey, Counter[int]], sign: int) -> None:
        """Add (sign=1) or subtract (sign=-1) counts per successor to hubs, and store them."""
        changed = []
        for key, delta in deltas.items():
            packed = await self._hub(key)
            hubmod.add(packed, delta, sign)
            changed.append((*key, *hubmod.encode(*packed)))
        await self.w.executemany(Q["put_hub"], changed)

    async def _promote_hubs(self, seen: Counter[HubKey], batch_size: int) -> None:
        """Make hubs of the batch's contexts (seen: occurrences) that now have hub_rows rows or more.

        A context found narrow is counted again only once it has occurred often enough since to
        have gained the rows it lacked. In a large batch only contexts seen twice are counted: a
        hub is common by definition, and counting every rare context would cost more than the batch.
        """
        least = 1 if batch_size < 200 else 2
        candidates = []
        for key, k in seen.items():
            if key in self._hubs:
                continue
            short = self._hub_short.get(key)
            if short is not None and short > k:
                self._hub_short.put(key, short - k)
            elif short is not None or k >= least:
                candidates.append(key)
        if not candidates:
            return
        w = self.w
        await w.executemany(Q["add_hub_candidate"], candidates)
        async with w.execute(Q["hub_candidate_rows"], (self.hub_rows,)) as cur:
            counted = [((int(c), bytes(x)), int(n)) for c, x, n in await cur.fetchall()]
        await w.execute(Q["clear_hub_candidates"])
        for key, rows in counted:
            if rows < self.hub_rows:
                self._hub_short.put(key, self.hub_rows - rows)
                continue
            async with w.execute(Q["successors"], key) as cur:
                packed = hubmod.from_rows(await cur.fetchall())
            await w.execute(Q["put_hub"], (*key, *hubmod.encode(*packed)))
            self._hubs.add(key)
            self._hubs_changed = True
            self._hub_arrays.put(key, packed)
            self._hub_short.pop(key)

    # ---------------------------------------------------------------- unlearning

    async def message(self, platform: str, message_id: str) -> tuple[ChainInfo, int, int] | None:
        """(chain, author id, fingerprint) of a learned message, or None."""
        async with self.r.execute(Q["message_by_id"], (platform, message_id)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return await self._chain_by_id(int(row[0])), int(row[1]), int(row[2])

    async def _chain_by_id(self, chain_id: int) -> ChainInfo:
        info = next((c for c in self._chains.values() if c.id == chain_id), None)
        if info is None:
            async with self.r.execute(Q["chain_by_id"], (chain_id,)) as cur:
                crow = await cur.fetchone()
            assert crow is not None
            info = ChainInfo(int(crow[0]), int(crow[1]), int(crow[2]), int(crow[3]))
        return info

    @property
    def sealer(self) -> Sealer:
        """Seals recent messages (see bot.core.sealed)."""
        if self._sealer is None:
            raise RuntimeError("store is not open")
        return self._sealer

    @property
    def keeps_recent(self) -> bool:
        """True when learned messages are kept as token ids for the edit window (it is not 0)."""
        return self.edit_window_days > 0

    async def recent(
        self, platform: str, message_id: str
    ) -> tuple[ChainInfo, int, list[int] | None, int, int] | None:
        """(chain, author id, token ids, characters, bytes) of a message learned within the window, or None.

        The token ids are None when the sealed row does not open (another key, or moved or altered).
        """
        async with self.r.execute(Q["recent_message"], (platform, message_id)) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        packed = self.sealer.open(platform, message_id, bytes(row[2]))
        info = await self._chain_by_id(int(row[0]))
        ids = list(chainmod.unpack(packed)) if packed is not None else None
        return info, int(row[1]), ids, int(row[3]), int(row[4])

    async def unlearn(self, item: PendingMessage) -> UnlearnStatus:
        """Subtract one learned message, given its tokens; refused when they do not match."""
        await self.flush()
        async with self._db.write_lock:
            async with self.w.execute(Q["message_by_id"], (item.platform, item.message_id)) as cur:
                row = await cur.fetchone()
            if row is None:
                return UnlearnStatus.NOT_LEARNED
            if (int(row[0]), int(row[1]), int(row[2])) != (item.chain.id, item.author_id, item.fingerprint):
                return UnlearnStatus.TEXT_MISMATCH

            async def work() -> None:
                await self._apply([item], sign=-1)
                await self._mark_removal([item.chain.id])

            await self._transaction(work)
        return UnlearnStatus.UNLEARNED

    async def _transaction(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run work in one write transaction (the caller holds the write lock).

        Whatever fails, and however (SQLite may have rolled back already, on a full disk say),
        the caches the work may have changed are dropped, so memory never describes a
        transaction the file does not hold.
        """
        try:
            await self.w.execute("BEGIN IMMEDIATE")
            await self._revalidate()
            await work()
            await self.w.execute("COMMIT")
        except BaseException:
            self._drop_caches()
            try:
                if self.w.in_transaction:
                    await self.w.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.warning("rollback failed (%s); the next transaction reads the file again", exc)
            raise
        finally:
            self._publish_hubs()

    async def _revalidate(self) -> None:
        """At the start of a write transaction: drop the writer's caches if another connection committed."""
        async with self.w.execute("PRAGMA data_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else -1
        if version != self._data_version:
            self._drop_caches()
            await self._load_hubs()
            self._data_version = version

    def _drop_caches(self) -> None:
        """Forget everything the writer cached about the file (read again on use)."""
        self._data_version = None
        self._token_ids.clear()
        self._chains.clear()
        self._authors.clear()
        self._hubs = set()
        self._hub_arrays.clear()
        self._hub_short.clear()
        self._hubs_changed = True
        self._guilds.clear()

    async def _mark_removal(self, chain_ids: Iterable[int]) -> None:
        """Inside a transaction that removes counts: bump the removals counter into the chains' rows."""
        async with self.w.execute(Q["bump_removals"]) as cur:
            row = await cur.fetchone()
        assert row is not None, "the counters table has no removals"
        await self.w.executemany(Q["mark_removal"], ((int(row[0]), chain_id) for chain_id in chain_ids))

    async def forget(self, platform: str, guild: str, external_id: str) -> ForgetResult:
        """Remove every contribution of a member to a guild's chains, in one transaction."""
        await self.flush()
        author_id = await self.find_author(platform, guild, external_id)
        chains = await self.chains_of_guild(platform, guild)
        totals = [0, 0, 0]

        async def work() -> None:
            if author_id is None:
                return
            refs: Counter[int] = Counter()
            for chain_id in chains:
                async with self.w.execute(Q["author_message_totals"], (chain_id, author_id)) as cur:
                    row = await cur.fetchone()
                assert row is not None
                n_messages, n_tokens, n_chars, n_bytes = (int(v) for v in row)
                async with self.w.execute(Q["forget_author_transitions"], (chain_id, author_id)) as cur:
                    rows = await cur.fetchall()
                if not n_messages and not rows:
                    continue
                for _, n, k in rows:
                    if n > chainmod.END:
                        refs[n] -= k
                deltas, _ = await asyncio.to_thread(
                    _by_context, (((chain_id, bytes(x), n, author_id), k) for x, n, k in rows), self._hubs
                )
                await self._add_to_hubs(deltas, -1)
                await self.w.execute(Q["delete_author_windows"], (chain_id, author_id))
                await self.w.execute(Q["delete_author_messages"], (chain_id, author_id))
                await self.w.execute(Q["delete_author_recent"], (chain_id, author_id))
                await self.w.execute(
                    Q["add_chain_counters"], (-n_messages, -n_tokens, -n_chars, -n_bytes, chain_id)
                )
                self._generation[chain_id] += 1
                totals[0] += n_messages
                totals[1] += n_tokens
                totals[2] += 1
            await self._add_refs(dict(refs))
            await self.w.execute(Q["delete_author"], (author_id,))
            await self.w.execute(Q["remove_consent"], (platform, guild, external_id))
            await self._mark_removal(chains)

        async with self._db.write_lock:
            await self._transaction(work)
        self._authors.pop((platform, guild, external_id), None)
        self._guilds.drop_member(platform, guild, external_id)
        return ForgetResult(*totals)

    async def reset(self, key: ChainKey) -> int:
        """Delete a chain entirely; returns how many learned messages it held."""
        await self.flush()
        info = await self.find_chain(key)
        if info is None:
            return 0
        held = [0]

        async def work() -> None:
            async with self.w.execute(Q["chain_counters"], (info.id,)) as cur:
                row = await cur.fetchone()
            held[0] = int(row[0]) if row else 0
            async with self.w.execute(Q["chain_token_refs"], (info.id,)) as cur:
                refs = {int(n): -int(k) for n, k in await cur.fetchall()}
            for name in (
                "delete_chain_transitions",
                "delete_chain_hubs",
                "delete_chain_windows",
                "delete_chain_messages",
                "delete_chain_recent",
                "delete_chain",
            ):
                await self.w.execute(Q[name], (info.id,))
            await self._add_refs(refs)
            await self._mark_removal(())  # a chain made later with this id starts past its last value
            self._hubs = {hub for hub in self._hubs if hub[0] != info.id}
            self._hub_arrays.clear()
            self._hubs_changed = True

        async with self._db.write_lock:
            await self._transaction(work)
        self._chains.pop(key, None)
        self._generation[info.id] += 1
        return held[0]

    # ---------------------------------------------------------------- reads for generation

    async def token_id(self, text: str) -> int | None:
        """The id of a token, or None when it was never learned (read now: another process may drop it)."""
        rows = await self.r.execute_fetchall(Q["token_id"], (text,))
        return int(next(iter(rows))[0]) if rows else None

    async def texts(self, ids: Sequence[int]) -> list[str]:
        """Token texts for ids."""
        missing = [i for i in set(ids) if self._token_texts.get(i) is None]
        found: dict[int, str] = {}
        if missing:
            for token_id, text in await self.r.execute_fetchall(Q["tokens_by_id"], (json.dumps(missing),)):
                found[int(token_id)] = text
                self._token_texts.put(int(token_id), text)
        return [found.get(i) or self._token_texts.get(i) or "" for i in ids]

    # ---------------------------------------------------------------- the walker

    async def _start_walker(self) -> None:
        if self.walker == "process":
            self._process = await WalkerProcess(self.path, self.key, self.cache_size).start()
            self.walker_pid = self._process.pid
            log.info("walker process %s started", self.walker_pid)
        else:
            self._walker = Walker(self.path, self.key, self.cache_size)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="markov-walker")

    async def _stop_walker(self) -> None:
        process, walker, thread = self._process, self._walker, self._thread
        self._process, self._walker, self._thread, self.walker_pid = None, None, None, None
        if process is not None:
            await process.close()
        if walker is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, walker.close)
            await asyncio.to_thread(thread.shutdown)

    async def on_walker(self, method: str, chain_id: int, *args: Any) -> Any:
        """Run a Walker method for a chain on the walker (thread or process), its caches up to date.

        A walker process that died (killed, out of memory) is started again and the call retried once.
        """
        version = Version(chain_id, self._generation[chain_id], self._hub_version)
        if self._walker is not None and self._thread is not None:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._walker.call, method, version, *args
            )
        if self._process is None:
            raise RuntimeError("store is not open")
        try:
            return await self._process.call(method, version, *args)
        except WalkerDied:
            log.warning("the walker process died; starting another")
            await self._stop_walker()
            await self._start_walker()
            assert self._process is not None
            return await self._process.call(method, version, *args)

    async def successors(self, chain_id: int, ctx: bytes, author_id: int | None = None) -> Choices:
        """Tokens that follow a context, with cumulative counts (cached on the walker)."""
        choices: Choices = await self.on_walker("successors", chain_id, chain_id, ctx, author_id)
        return choices

    async def chain_counters(self, chain_id: int) -> tuple[int, int, int, int]:
        """(messages, tokens, characters, UTF-8 bytes) learned by a chain."""
        async with self.r.execute(Q["chain_counters"], (chain_id,)) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3])) if row else (0, 0, 0, 0)

    async def member_totals(self, platform: str, guild: str, author_id: int) -> tuple[int, int, int]:
        """(messages, tokens, chains) learned from a member in a guild."""
        async with self.r.execute(Q["member_totals"], (platform, guild, author_id)) as cur:
            row = await cur.fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    async def is_learned(self, platform: str, message_id: str) -> bool:
        """True when a message id was learned (committed)."""
        async with self.r.execute(Q["message_by_id"], (platform, message_id)) as cur:
            return await cur.fetchone() is not None

    async def named(self, name: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run a named read-only statement on the reader (for reports)."""
        async with self.r.execute(Q[name], params) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def report_shape(self, chain_id: int) -> tuple[int, int, int, int, int, float, float]:
        """(rows, states, pairs, forced, total, sum T log2 T, sum c log2 c) of a chain's transitions.

        The two full scans run at once, each on a short-lived read-only connection of its own in
        a thread (SQLite releases the GIL), so the reader stays free for the report's sampling
        and attack meanwhile.
        """
        states, pairs = await asyncio.gather(
            asyncio.to_thread(_read_row, self.path, Q["report_states"], (chain_id,)),
            asyncio.to_thread(_read_row, self.path, Q["report_pairs"], (chain_id,)),
        )
        rows, count, forced, total, tlogt = states
        return int(rows), int(count), int(pairs[0]), int(forced), int(total), float(tlogt), float(pairs[1])

    async def scan(self, name: str, *params: Any) -> tuple[Any, ...]:
        """The one row of a named read-only report statement, on a connection of its own in a thread."""
        return await asyncio.to_thread(_read_row, self.path, Q[name], params)

    def generation(self, chain_id: int) -> int:
        """A number that changes whenever the chain is written to (by this process)."""
        return self._generation[chain_id]


def _pack_tokens(tokens: Sequence[str], ids: dict[str, int]) -> bytes:
    """A message's token ids, packed as stored in recent_messages."""
    return chainmod.pack([ids[t] for t in tokens])


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
