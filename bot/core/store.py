"""The SQLite store: one writer connection with a batched queue, and readers beside it.

Learning is queued and committed in batches (at most every ``flush_interval`` seconds or
``batch_size`` messages, and on close: to the learning log, or one transaction a batch), so a
crash loses at most the batch not yet committed. Reads go through a second connection, and
generation walks on a thread or in a process of its own with a third (see bot.core.walker); in
WAL mode none of them waits for the writer.

Store is a façade over its parts, each in a module of its own: schema (the file and its
migrations), connections, guildstate, registry (chains and authors), vocabulary, hubcache,
writer (every write transaction), versions (where the writer stands on each chain), learnqueue
(queued learning and the flusher), learnlog (SQLite's live batches, committed to a log of their
own and applied to the database several at once; by a learning process of its own in a running
bot, see applier), keymeta (the fingerprint key's check value),
opening (each engine's open and close), learned (reads of learned messages and the meta table,
as ``store.learned``), reports (the retention report's reads, as ``store.reports``) and
walkerhost (where the walker runs), called through walkerclient (as ``store.walker``).

Given a PostgreSQL URL (postgresql://...) instead of a path, the same store runs on PostgreSQL
(bot.core.storeparts picks each engine's parts): the writer and its transactions are one
implementation over the SQL seam (bot.core.writetx), several processes may write at once, and
hubs are off. Its fingerprint key file is named from key_path (default: the default SQLite
file's, data/markov.sqlite3.key) unless the key is given.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import aiosqlite

from bot.core import applier, background, bulkwrite, engines, learnlog, opening, rolling
from bot.core.columns import Columns
from bot.core.connections import Connections
from bot.core.contracts import GuildStateStore, RegistryStore, RegistryWrites, VocabularyStore
from bot.core.deferred import Deferred
from bot.core.hubcache import HubCache
from bot.core.learned import Learned
from bot.core.learnqueue import DISK_FULL_CODES as DISK_FULL_CODES
from bot.core.learnqueue import LearningQueue
from bot.core.lru import LRU as LRU
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
from bot.core.opening import WRITER_CACHE_KIB as WRITER_CACHE_KIB
from bot.core.removal import CUT_WORKERS
from bot.core.reports import Reports
from bot.core.schema import APPLICATION_ID as APPLICATION_ID
from bot.core.schema import LEGACY_TABLES as LEGACY_TABLES
from bot.core.schema import SCHEMA_VERSION as SCHEMA_VERSION
from bot.core.schema import WAL_SWITCH_SECONDS as WAL_SWITCH_SECONDS
from bot.core.schema import NotMarkovbotDatabase as NotMarkovbotDatabase
from bot.core.schema import SchemaTooNew as SchemaTooNew
from bot.core.schema import StoreError as StoreError
from bot.core.schema import migrations as migrations
from bot.core.sealed import Sealer
from bot.core.storeparts import SQLITE_ERRORS, postgres_errors, postgres_parts, sqlite_parts
from bot.core.versions import ChainVersions
from bot.core.walkerclient import WalkerClient
from bot.core.walkerhost import WALKERS as WALKERS
from bot.core.walkerhost import WalkerHost
from bot.core.writer import Writer

# The `import X as X` lines re-export names that callers and tests import from here.

log = logging.getLogger(__name__)

T = TypeVar("T")


# Defaults, here once (bot.config reads these names for the bot's settings).
FLUSH_INTERVAL = 1.0  # seconds between commits of queued learning, at most
BATCH_SIZE = 2000  # messages per transaction, at most
MAX_PENDING = 20_000  # queued messages from which learning waits
CACHE_SIZE = 50_000  # entries per cache (token ids, texts, walked states)
WALKER = "thread"  # a Store opened by a script or a test: needs no `if __name__ == "__main__":`
BOT_WALKER = "process"  # the bot: walks take no turns on the interpreter lock with the event loop
HUB_ROWS = 1000  # transition rows from which a context becomes a hub (see bot.core.hubs)
HUBS_IN_MEMORY = 1024  # hubs the writer keeps unpacked between commits
EDIT_WINDOW_DAYS = 7  # days a learned message's token ids are kept for a delete or edit after a restart
PRUNE_SECONDS = 60.0  # the writer drops recent messages past the window at most this often ...
PRUNE_ROWS = 10_000  # ... and at most this many per transaction (then again at the next flush)
BULK_MEMORY_MB = 1024  # what an import (markovbot import) may hold: queued messages, a batch, the page cache
# An import commits at least this often (what a crash loses; what a bot on the same file waits); each
# commit after the first rewrites the blocks the earlier ones wrote (benchmarks/README.md).
BULK_COMMIT_SECONDS = 300.0


class Store:
    """Owns the database: opens it, starts the walker, and answers for its parts (a thin façade)."""

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
        bulk_memory_mb: int = BULK_MEMORY_MB,
        bulk_commit_seconds: float = BULK_COMMIT_SECONDS,
        merge_rows: int | None = None,
        idle_merge_seconds: float = rolling.IDLE_SECONDS,
        learning_log: bool = True,
        clock: Callable[[], float] = time.time,
        key_path: str | os.PathLike[str] | None = None,
        in_background: bool = False,
    ) -> None:
        url = engines.parse(path) if isinstance(path, str) and "://" in path else None
        self.url = url if isinstance(url, engines.PostgresUrl) else None  # None: a SQLite file
        self.path = Path(path) if self.url is None else Path(key_path or engines.DEFAULT_SQLITE_PATH)
        # PostgreSQL's fingerprint key file is named from key_path (<key_path>.key), as beside a SQLite file
        where: Path | str = self.path if self.url is None else self.url.dsn
        self._given_key = key  # the fingerprint key, or None: the key file beside the database
        self._db = Connections()  # SQLite's connections; on PostgreSQL only its write lock is used
        self.versions = ChainVersions()  # where this process's writer stands on each chain
        # pgread makes WalkerHost and Reports take a PostgreSQL URL string as where
        # A running bot's walker process keeps a CPU of its own (bot.core.background.Apart)
        self._apart = background.Apart() if in_background and walker == "process" else None
        cpu = self._apart.walker if self._apart is not None else None
        self._walker_host = WalkerHost(where, cache_size, walker, cpu)  # started on open
        self.walker = WalkerClient(self._walker_host, self.versions)
        self.reports = Reports(self._db, where)
        self.cache_size = cache_size
        if hub_rows < 1:
            raise ValueError(f"hub_rows must be at least 1, not {hub_rows}")
        self.hub_rows = hub_rows
        if bulk_memory_mb < 64:
            raise ValueError(f"bulk_memory_mb must be at least 64, not {bulk_memory_mb}")
        self.bulk_memory_mb = bulk_memory_mb
        self.bulk_commit_seconds = bulk_commit_seconds
        if edit_window_days < 0:
            raise ValueError(f"edit_window_days must be 0 or more, not {edit_window_days}")
        parts = (
            sqlite_parts(self._db, cache_size) if self.url is None else postgres_parts(self.url, cache_size)
        )
        self._pg, tx, self._guilds, self._registry, self._vocabulary, self._reader = parts
        # Hubs are off on PostgreSQL (see bot.core.hubcache): kept across transactions, several writers would stale them.
        self._hubs = HubCache(
            tx.sql, self.versions, hub_rows, cache_size, HUBS_IN_MEMORY, enabled=self.url is None
        )
        self.key = b""  # the fingerprint key (bot.core.keys), once open
        self._learned: Learned | None = None  # built on open, when the sealer has the key
        self._writes = Writer(
            tx,
            self._vocabulary,
            self._hubs,
            self._guilds,
            self._registry,
            self.versions,
            edit_window_days=edit_window_days,
            clock=clock,
            prune_seconds=PRUNE_SECONDS,
            prune_rows=PRUNE_ROWS,
            lock=self._db.write_lock,
            reads=self._reader,
        )
        # Chains and authors are made by SQLite's writer, or PostgreSQL's registry (identity columns).
        self._makes: RegistryWrites = self._writes if self._pg is None else self._registry  # type: ignore[assignment]
        if merge_rows is not None:
            self._writes.counts.merge_rows = merge_rows  # else countwriter.MERGE_ROWS
        if walker == "process":  # this process may start others: a forget cuts blocks in them too
            self._writes.removal.cut_workers = CUT_WORKERS
        self._learning_log = learning_log and self.url is None  # SQLite's (bot.core.learnlog)
        self._in_background = in_background  # a running bot's: SQLite's writing threads below the event loop
        # ... and, when it may start processes, the log applied in a learning process (bot.core.applier)
        self._learning_process = in_background and walker == "process" and self._learning_log
        if self._learning_process and clock is not time.time:
            raise ValueError("a store that learns in a process of its own keeps time by the system clock")
        self._queue = LearningQueue(
            self._db,
            self._writes,
            path=self.path if self.url is None else self.url.redacted,
            errors=SQLITE_ERRORS if self.url is None else postgres_errors(),
            locked=functools.partial(opening.write_locked, self.path) if self.url is None else None,
            flush_interval=flush_interval,
            batch_size=batch_size,
            max_pending=max_pending,
            idle_seconds=idle_merge_seconds,
        )

    # ---------------------------------------------------------------- the writer's settings and totals

    @property
    def flush_interval(self) -> float:
        """Seconds between commits of queued learning, at most."""
        return self._queue.flush_interval

    @property
    def batch_size(self) -> int:
        """Messages per transaction, at most."""
        return self._queue.batch_size

    @property
    def max_pending(self) -> int:
        """Queued messages from which learning waits."""
        return self._queue.max_pending

    @property
    def edit_window_days(self) -> int:
        """Days a learned message's token ids are kept for a delete or edit."""
        return self._writes.edit_window_days

    @property
    def clock(self) -> Callable[[], float]:
        """Unix seconds: when a message was learned, and when its row expires."""
        return self._writes.clock

    @property
    def last_error(self) -> str | None:
        """Why the last write failed, or None when it succeeded."""
        return self._queue.last_error

    @property
    def committed(self) -> int:
        """Messages committed since open."""
        return self._queue.committed

    @property
    def duplicates(self) -> int:
        """Messages dropped as already learned since open."""
        return self._queue.duplicates

    @property
    def logs_learning(self) -> bool:
        """True when live batches are committed to the learning log first (bot.core.learnlog)."""
        return self._queue.log is not None

    @property
    def saved(self) -> int:
        """Messages committed to the database or the learning log since open (a crash no longer loses them)."""
        return self._queue.saved

    # ---------------------------------------------------------------- lifecycle

    async def open(self) -> Store:
        """Open the database (SQLite's two connections, or PostgreSQL's pool), migrate it, start the flusher."""
        if self._pg is None:
            await opening.check_sqlite(self.path)
        else:
            await self._pg.start()
        taken: tuple[learnlog.LearningLog, list[learnlog.Entry]] | None = None
        try:
            if self._pg is None:
                self.key = await opening.open_sqlite(
                    self._db, self.path, self._given_key, in_background=self._in_background
                )
            else:
                self.key = await opening.open_postgres(
                    self._pg, self._guilds, self._reader, self.path, self._given_key
                )
            self._writes.sealer = Sealer(self.key)
            self._learned = Learned(self._reader, self._db.write_lock, self._writes.sealer)
            await self._walker_host.start(self.key)
            applying: applier.ProcessApplier | None = None
            if self._learning_log:
                applied = int(await self.get_meta(learnlog.APPLIED_META) or 0)
                taken = await learnlog.take(self.path, self.key, applied, in_background=self._in_background)
            if taken is not None and self._learning_process:
                applying = applier.ProcessApplier(self.path, self.key, self._applier_options(), self.versions)
                await applying.start()
        except BaseException:
            if taken is not None:
                await taken[0].close()
            await self._close_connections()
            raise
        learning, replay = taken or (None, [])
        self._queue.start(learning, replay, applying)
        if self._apart is not None:
            self._apart.begin()
        return self

    def _applier_options(self) -> applier.Options:
        """What a learning process's writer is opened with (bot.core.applier)."""
        counts = self._writes.counts
        return applier.Options(self.cache_size, self.hub_rows, self.edit_window_days, counts.merge_rows)

    @property
    def is_open(self) -> bool:
        """Whether the store is open."""
        return self._writer is not None if self._pg is None else self._pg.is_open

    async def close(self) -> None:
        """Flush what is pending, stop the flusher and close both connections."""
        await self._queue.stop()
        try:
            if self.is_open:
                await self.flush()
        finally:
            await self._close_connections()

    async def _close_connections(self) -> None:
        await self._queue.release_log()
        await self._walker_host.stop()
        await self.reports.close()
        await opening.close(self._db, self._pg, self._guilds)
        if self._apart is not None:
            self._apart.end()

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

    @property
    def learning_pid(self) -> int | None:
        """The learning process's id, when the learning log is applied in one (bot.core.applier)."""
        return self._queue.learning_pid

    @property
    def writes(self) -> Writer:
        """Every write transaction of the store (bot.core.writer): a learning process applies with it."""
        return self._writes

    @property
    def learned(self) -> Learned:
        """Reads of learned messages, their counters and the meta table (bot.core.learned), once open."""
        if self._learned is None:
            raise RuntimeError("store is not open")
        return self._learned

    async def get_meta(self, key: str) -> str | None:
        """A value from the meta table."""
        return await self.learned.get_meta(key)

    async def set_meta(self, key: str, value: str) -> None:
        """Store a value in the meta table (StoreError when the database refuses it)."""
        await self.write(self.learned.set_meta(key, value))

    async def write(self, work: Awaitable[T]) -> T:
        """Await one of the parts' writes (consent, a new chain or author); the engine's error becomes a
        StoreError that says what failed: DatabaseBusy (another process held the file past the busy
        timeout), DiskFull, or the engine's own reason."""
        return await self._queue.write(work)

    async def defer(self, change: Deferred) -> int | None:
        """Keep a change the database could not take yet in the learning log, until done() (its number;
        None without a log: PostgreSQL, or another process holds it)."""
        log_ = self._queue.log
        return None if log_ is None else await self.write(log_.defer(change))

    async def deferred(self) -> list[tuple[int, Deferred]]:
        """The changes kept by defer() and not yet done, oldest first (an earlier run's, at open)."""
        log_ = self._queue.log
        return [] if log_ is None else await log_.deferred()

    async def done(self, number: int) -> None:
        """Drop a change kept by defer(): it was done."""
        if self._queue.log is not None:
            await self.write(self._queue.log.done(number))

    # ---------------------------------------------------------------- chains and authors

    async def find_chain(self, key: ChainKey) -> ChainInfo | None:
        """The chain's row, or None when nothing was ever learned there."""
        return await self._registry.find_chain(key)

    async def chain(self, key: ChainKey, settings: GuildSettings) -> ChainInfo:
        """The chain's row, created with the guild's order and run length if new."""
        info = await self.find_chain(key)
        if info is not None:
            return info
        return await self.write(self._makes.add_chain(key, settings))

    async def all_chains(self) -> list[ChainSummary]:
        """Every chain of the database, with what it has learned."""
        return await self._registry.all_chains()

    async def chain_author_ids(self, chain_id: int, limit: int) -> list[str]:
        """External ids of up to limit authors with messages learned in a chain."""
        return await self._registry.chain_author_ids(chain_id, limit)

    async def find_author(self, platform: str, guild: str, external_id: str) -> int | None:
        """The author's internal id, or None."""
        return await self._registry.find_author(platform, guild, external_id)

    async def author(self, platform: str, guild: str, external_id: str) -> int:
        """The author's internal id, created if new (an import's: its caller vouches for consent)."""
        found = await self.find_author(platform, guild, external_id)
        made = (
            found
            if found is not None
            else await self.write(self._makes.add_author(platform, guild, external_id))
        )
        assert made is not None, "an author is made whatever the consent unless consented is asked"
        return made

    async def consenting_author(self, platform: str, guild: str, external_id: str) -> int | None:
        """The author's internal id, created if new while their consent is recorded (None once a
        forget removed it: a live message that passed the consent check before it)."""
        found = await self.find_author(platform, guild, external_id)
        if found is not None:
            return found
        return await self.write(self._makes.add_author(platform, guild, external_id, consented=True))

    # ---------------------------------------------------------------- its parts, as contracts

    @property
    def guild_state(self) -> GuildStateStore:
        """The guild-state part, as its engine-neutral contract (bot.core.contracts)."""
        return self._guilds

    @property
    def registry(self) -> RegistryStore:
        """The chains-and-authors part, as its engine-neutral contract (bot.core.contracts)."""
        return self._registry

    @property
    def vocabulary(self) -> VocabularyStore:
        """The vocabulary part, as its engine-neutral contract (bot.core.contracts)."""
        return self._vocabulary

    # ---------------------------------------------------------------- the batched writer

    @property
    def pending(self) -> int:
        """Messages queued and not yet committed."""
        return self._queue.pending

    def is_pending(self, platform: str, message_id: str) -> bool:
        """True when the message is queued for the next flush."""
        return self._queue.is_pending(platform, message_id)

    async def enqueue(self, message: PendingMessage) -> bool:
        """Queue a message for learning, waiting while the queue is full; False if already queued."""
        return await self._queue.enqueue(message)

    async def learn_columns(self, batch: Columns) -> FlushResult:
        """Learn an import's batch past the queue (inside bulk() only), in its transaction."""
        return await self._queue.learn_columns(batch)

    async def flush(self, *, prune: bool = True) -> FlushResult:
        """Commit everything queued, in batches of at most batch_size messages (prune: and drop recent
        messages past the window when due)."""
        return await self._queue.flush(prune=prune)

    async def merged_while_idle(self) -> None:
        """Wait until merging while idle has moved every chain's learned counts from the deltas into blocks."""
        await self._queue.idle_merged.wait()

    @contextlib.asynccontextmanager
    async def bulk(self, reserve_mb: int = 0) -> AsyncIterator[None]:
        """Learn in a few large transactions until the block ends (an import), within bulk_memory_mb
        (shared out by bot.core.bulkwrite.budget), committed also every bulk_commit_seconds.

        reserve_mb: what the import holds outside this process (its worker), taken off the budget.
        """
        share = bulkwrite.budget(
            self.bulk_memory_mb - reserve_mb, self.batch_size, self.max_pending, WRITER_CACHE_KIB
        )
        await self.flush()
        if self._pg is None:
            await self.w.execute(f"PRAGMA cache_size = -{share.cache_kib}")
        try:
            async with self._queue.sized(
                share.batch, share.pending, share.staged_bytes, self.bulk_commit_seconds
            ):
                yield
        finally:
            if self._db.writer is not None:  # SQLite's
                await self.w.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")

    # ---------------------------------------------------------------- unlearning

    async def message(self, platform: str, message_id: str) -> tuple[ChainInfo, int, int] | None:
        """(chain, author id, fingerprint) of a learned message, or None."""
        return await self.learned.message(platform, message_id)

    @property
    def sealer(self) -> Sealer:
        """Seals recent messages (see bot.core.sealed)."""
        return self._writes.sealer

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
        return await self.learned.recent(platform, message_id)

    async def unlearn(self, item: PendingMessage) -> UnlearnStatus:
        """Subtract one learned message, given its tokens; refused when they do not match (StoreError:
        the database could not be written, locked by another process past the busy timeout, say)."""
        await self.flush()
        return await self.write(self._writes.unlearn(item))

    async def forget(self, platform: str, guild: str, external_id: str) -> ForgetResult:
        """Remove every contribution of a member to a guild's chains, in one transaction.

        Nothing is flushed first: the member's messages still queued or logged are dropped when
        they come to be committed (their author is gone), so a forget does not wait for the
        backlog of a busy server to be learned; from the commit on, none of them reads as pending.
        """
        return await self.write(self._writes.forget(platform, guild, external_id, self._queue.forget_author))

    async def reset(self, key: ChainKey) -> int:
        """Delete a chain entirely; returns how many learned messages it held."""
        await self.flush()
        return await self.write(self._writes.reset(key))

    # ---------------------------------------------------------------- reads for generation

    async def token_id(self, text: str) -> int | None:
        """The id of a token, or None when it was never learned (read now: another process may drop it)."""
        return await self._vocabulary.token_id(text)

    async def texts(self, ids: Sequence[int]) -> list[str]:
        """Token texts for ids."""
        return await self._vocabulary.texts(ids)

    # ---------------------------------------------------------------- the walker and counts

    @property
    def walker_pid(self) -> int | None:
        """The walker process, when there is one."""
        return self.walker.pid

    async def chain_counters(self, chain_id: int) -> tuple[int, int, int, int]:
        """(messages, tokens, characters, UTF-8 bytes) learned by a chain."""
        return await self.learned.chain_counters(chain_id)

    async def member_totals(self, platform: str, guild: str, author_id: int) -> tuple[int, int, int]:
        """(messages, tokens, chains) learned from a member in a guild."""
        return await self.learned.member_totals(platform, guild, author_id)

    async def is_learned(self, platform: str, message_id: str) -> bool:
        """True when a message id was learned (committed)."""
        return await self.learned.is_learned(platform, message_id)
