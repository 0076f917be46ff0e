"""The learning queue: messages waiting to be learned, and the flusher that commits them in batches.

With a learning log (bot.core.learnlog, SQLite's), the flusher commits each batch to the log and an
applier task applies what the log holds to the database, up to APPLY_ENTRIES batches in one
transaction, whenever the apply before has ended; without one (PostgreSQL; a second process on the
same SQLite file; an import) each batch is committed to the database. flush() applies the log, then
commits what is queued: afterwards everything enqueued before it is learned. A running bot's log is
applied by a learning process (bot.core.applier), and flush() then logs what is queued and has it
apply that too, so that only the learning process learns live (and merges while idle what it left
in the deltas). Queued and logged messages together stay under max_pending (enqueue waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from bot.core import rolling
from bot.core.applier import Applier, ApplierDied, LocalApplier
from bot.core.columns import Columns
from bot.core.connections import Connections
from bot.core.learnlog import Entry, LearningLog
from bot.core.messagekeys import message_key
from bot.core.models import FlushResult, PendingMessage
from bot.core.schema import DatabaseBusy, DiskFull, StoreError
from bot.core.writer import Writer

log = logging.getLogger(__name__)
T = TypeVar("T")

# Log entries (batches) one transaction applies at most. Under load the applier takes what was
# logged while it applied the last ones, each delta page then written once for all of them; this
# bounds how long it holds the write lock (what a forget waits for). Learning 1,000,000 messages
# as fast as they came, the same run: 4,048 msgs/s with 10, 3,592 with 3 (benchmarks/README.md).
APPLY_ENTRIES = 10

# SQLite's codes for a write the disk refused: no space left (ENOSPC), or the file may not grow (EFBIG).
DISK_FULL_CODES = frozenset({13, 778})  # SQLITE_FULL, SQLITE_IOERR_WRITE
BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED: the low byte of their extended codes too
PG_DISK_FULL, PG_LOCK_NOT_AVAILABLE = "53100", "55P03"  # PostgreSQL's SQLSTATEs


class LearningQueue:
    """Queued learning, committed at most every flush_interval seconds or batch_size messages."""

    def __init__(
        self,
        db: Connections,
        writer: Writer,
        *,
        path: Path | str,
        errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError, sqlite3.DatabaseError),
        locked: Callable[[], bool] | None = None,
        flush_interval: float,
        batch_size: int,
        max_pending: int,
        idle_seconds: float,
    ) -> None:
        self._db = db
        self._writer = writer
        self.path = path
        # what a failed write raises on this engine, or when a learning process ended (bot.core.applier)
        self._errors: tuple[type[BaseException], ...] = (*errors, ApplierDied)
        # whether another connection holds the database's write lock now, looked at without waiting
        # (SQLite's file lock; None on PostgreSQL, which locks rows, not the database)
        self._locked = locked
        self.flush_interval = flush_interval
        self.idle_seconds = idle_seconds  # merging deltas while idle, once an interval (0: never)
        self._learned_at = -math.inf  # time.monotonic() of the last commit that learned something
        #: Set once merging while idle has left no learned counts in the deltas (cleared by learning).
        self.idle_merged = asyncio.Event()
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._pending: list[PendingMessage] = []
        # The keys (bot.core.messagekeys) of the queued messages and of the logged ones: what the
        # database dedupes by, and an int, where a tuple of two strings cost an import more to hash.
        self._pending_keys: set[int] = set()
        # Messages ever appended to the queue and ever taken from its front: a flush owes those
        # queued before it began, and stops there though producers keep queueing meanwhile.
        self._appended = 0
        self._taken_from = 0
        self.log: LearningLog | None = None  # where batches are committed first, when this process holds it
        self._logged: list[Entry] = []  # committed to the log, not yet applied to the database
        self._logged_n = 0  # messages in them
        self._log_lock = asyncio.Lock()  # held while a batch is committed to the log
        self._applying: Applier = LocalApplier(writer)  # what applies the log (and merges while idle)
        self._applier: asyncio.Task[None] | None = None
        self._apply_wake = asyncio.Event()
        self._room = asyncio.Condition()
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._sized = False  # inside sized(): the flusher commits full batches only
        self._failure: StoreError | None = None  # why an import's transaction failed (inside sized())
        self.last_error: str | None = None
        self._held: str | None = None  # why the last write failed, when another process held the database
        #: Totals since open: messages learned into the database, and dropped as already learned ...
        self.committed = 0
        self.duplicates = 0
        #: ... and committed to the database or to the log (what a crash no longer loses).
        self.saved = 0

    @contextlib.asynccontextmanager
    async def sized(
        self, batch_size: int, max_pending: int, staged_bytes: int, seconds: float
    ) -> AsyncIterator[None]:
        """An import, until the block ends: its batches (learn_columns) and full queued batches of
        batch_size, up to max_pending queued, in one transaction that commits once its staged counts
        reach staged_bytes or it has been open for seconds, and at the end.

        A failed commit rolls back every batch since the last one, so the import stops there: its
        next batch (or the end of the block) raises the StoreError; what was committed is kept.
        """
        saved = self.batch_size, self.max_pending
        self.batch_size, self.max_pending, self._sized = batch_size, max_pending, True
        self._failure = None
        self._writer.begin_bulk(staged_bytes, seconds)
        try:
            yield
            await self.flush()
        finally:
            self.batch_size, self.max_pending = saved
            self._sized = False
            async with self._db.write_lock:
                await self.write(self._writer.end_bulk())
            async with self._room:
                self._room.notify_all()
        if self._failure is not None:
            raise self._failure

    def start(
        self, log: LearningLog | None = None, replay: Sequence[Entry] = (), applying: Applier | None = None
    ) -> None:
        """Start the flusher (and, given the learning log, the applier: replay is what it holds unapplied;
        applying: what applies it, when not this process's writer)."""
        self.log = log
        if applying is not None:
            self._applying = applying
        self._closing = False
        if log is not None:
            self._logged = list(replay)
            self._logged_n = sum(len(batch) for _, batch in replay)
            for _, batch in self._logged:
                self._pending_keys.update(item.key for item in batch)
            self._applier = asyncio.create_task(self._apply_loop(), name="markov-applier")
            self._apply_wake.set()
        self._flusher = asyncio.create_task(self._flush_loop(), name="markov-flusher")

    @property
    def learning_pid(self) -> int | None:
        """The learning process's id, when what the log holds is applied in one."""
        return self._applying.pid

    async def release_log(self) -> None:
        """Let the learning log go (what it holds unapplied stays there for the next open), and what applied it."""
        applying, self._applying = self._applying, LocalApplier(self._writer)
        await applying.close()
        if self.log is not None:
            await self.log.close()
            self.log = None

    async def stop(self) -> None:
        """Stop the flusher and the applier (what is queued or logged stays so)."""
        # Stopped by a flag, not cancelled: on Python 3.11 a cancel that races the wake-up
        # event can be swallowed by the wait, and the task would never end.
        self._closing = True
        for task, wake in ((self._flusher, self._wake), (self._applier, self._apply_wake)):
            if task is not None:
                wake.set()
                await task
        self._flusher = self._applier = None

    @property
    def pending(self) -> int:
        """Messages queued or logged, and not yet learned into the database."""
        return len(self._pending) + self._logged_n

    def is_pending(self, platform: str, message_id: str) -> bool:
        """True when the message is queued or logged, not yet learned into the database."""
        return message_key(platform, message_id) in self._pending_keys

    async def enqueue(self, message: PendingMessage) -> bool:
        """Queue a message for learning, waiting while the queue is full; False if already queued."""
        async with self._room:
            await self._room.wait_for(lambda: self.pending < self.max_pending)
            if message.key in self._pending_keys:
                return False
            self._pending.append(message)
            self._pending_keys.add(message.key)
            self._appended += 1
        if len(self._pending) >= self.batch_size:
            self._wake.set()
            await asyncio.sleep(0)  # let the flusher start on the batch while we go on
        return True

    async def learn_columns(self, batch: Columns) -> FlushResult:
        """Learn an import's batch at once, past the queue (inside sized() only): tried again while another
        process holds the database, as the flusher does; any other failure raised (the import stops)."""
        assert self._sized, "columns are learned past the queue by an import only"
        backoff = self.flush_interval
        while True:
            try:
                async with self._db.write_lock:
                    await self._still_free()
                    result = await self.write(self._writer.commit(batch))
                break
            except DatabaseBusy:
                if self._writer.bulk_failed:
                    raise
                backoff = min(30.0, backoff * 2)
                log.warning("learning paused, retrying in %.0f s: %s", backoff, self.last_error)
                await asyncio.sleep(backoff)
        self._learned(result, len(batch))
        return result

    async def _flush_loop(self) -> None:
        backoff = self.flush_interval
        if self.idle_seconds:
            try:
                await self._applying.find_unmerged()
            except self._errors as exc:  # merged once the chain learns again
                log.warning("could not look for counts left to merge: %s", exc)
        loop = asyncio.get_running_loop()
        due = loop.time() + backoff
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(due):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            started = loop.time()  # the next flush is due an interval after this one began, not ended
            try:
                if self.log is not None and not self._sized:
                    await self._log_batches()
                else:
                    await self.flush(full_only=self._sized)
                await self._merge_idle()
                backoff = self.flush_interval
            except StoreError as exc:
                if self._writer.bulk_failed:  # an import's transaction rolled back: it stops (see sized)
                    async with self._room:
                        self._failure = self._failure or exc
                        self._room.notify_all()
                    continue
                backoff = min(30.0, backoff * 2)
                log.warning("learning paused, retrying in %.0f s: %s", backoff, self.last_error)
            except Exception:
                backoff = min(30.0, backoff * 2)
                log.exception("flush failed; learning paused, retrying in %.0f s", backoff)
            finally:
                due = started + backoff

    async def flush(self, *, full_only: bool = False, prune: bool = True) -> FlushResult:
        """Apply what is logged, then commit what was queued when called (full_only: only full
        batches), in batches of at most batch_size messages; what is queued meanwhile waits.
        prune: also drop recent messages past the window when due, even with nothing to commit."""
        owed = self._appended
        if not (self._owes(owed) or self._logged or (prune and self._writer.prune_due())):
            # nothing to do: no wait for the write lock, which an idle merge holds for up to the busy
            # timeout while another process holds the file (a report during an import, say)
            return FlushResult(0, 0)
        async with self._log_lock:  # no batch is half way to the log meanwhile
            if self.log is not None and not self._sized and self._applying.pid is not None:
                await self._log_owed(owed)  # a learning process learns them: all its chains' deltas its own
            applied = await self._apply_logged()
            learned, duplicates = applied.learned, applied.duplicates
            async with self._db.write_lock:
                if self._owes(owed):
                    await self._still_free()
                while self._owes(owed) and (not full_only or len(self._pending) >= self.batch_size):
                    batch = self._pending[: self.batch_size]
                    result = await self.write(self._writer.commit(batch))
                    self._learned(result, len(batch))
                    learned += result.learned
                    duplicates += result.duplicates
                    await self._taken(batch, forget_ids=True)
                await self._after_commits()
        return FlushResult(learned, duplicates)

    def _owes(self, owed: int) -> bool:
        """True while some of the first `owed` messages ever queued are still in the queue."""
        return bool(self._pending) and self._taken_from < owed

    def _learned(self, result: FlushResult, saved: int) -> None:
        """Count what a commit to the database learned (saved: messages it made durable)."""
        self.committed += result.learned
        self.duplicates += result.duplicates
        self.saved += saved
        if result.learned:
            self._learned_at = time.monotonic()

    async def _taken(self, batch: Sequence[PendingMessage], *, forget_ids: bool) -> None:
        """A batch has left the queue (forget_ids: it is learned, so no longer pending at all)."""
        async with self._room:
            del self._pending[: len(batch)]
            self._taken_from += len(batch)
            if forget_ids:
                self._forget_ids(batch)
            self._room.notify_all()

    def forget_author(self, author_id: int) -> None:
        """A member was forgotten: their messages queued or logged are no longer pending (each is dropped
        when its batch is committed, its author gone)."""
        batches = [self._pending, *(batch for _, batch in self._logged)]
        self._pending_keys.difference_update(
            [m.key for batch in batches for m in batch if m.author_id == author_id]
        )

    def _forget_ids(self, batch: Sequence[PendingMessage]) -> None:
        self._pending_keys.difference_update([item.key for item in batch])

    async def _after_commits(self) -> None:
        """After commits (the write lock held): drop recent messages past the window, when due."""
        if self._writer.prune_due():
            await self.write(self._writer.prune())
        if self._writer.counts.unmerged or self._applying.unmerged():
            self.idle_merged.clear()

    async def _log_batches(self) -> None:
        """Commit what is queued to the learning log, a batch an entry, then wake the applier; what is
        queued meanwhile waits for the next time (queued and logged messages together stay under
        max_pending: enqueue waits)."""
        owed = self._appended
        async with self._log_lock:
            await self._log_owed(owed)
        if self._logged:
            self._apply_wake.set()

    async def _log_owed(self, owed: int) -> None:
        """Commit the first `owed` messages ever queued that are still queued to the log, a batch an entry
        (the log lock held)."""
        log_ = self.log
        assert log_ is not None
        while self._owes(owed):
            batch = self._pending[: self.batch_size]
            seq = await self.write(log_.append(batch), to_log=True)
            self._logged.append((seq, batch))
            self._logged_n += len(batch)
            self.saved += len(batch)
            await self._taken(batch, forget_ids=False)

    async def _apply_loop(self) -> None:
        """Apply the log's entries whenever there are some (and nothing else is applying them)."""
        backoff = self.flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff if self._logged else None):
                    await self._apply_wake.wait()
            self._apply_wake.clear()
            if self._closing:
                return
            try:
                await self._apply_some()
                if self._logged:  # more came meanwhile: on at once
                    self._apply_wake.set()
                backoff = self.flush_interval
            except StoreError:
                backoff = min(30.0, backoff * 2)
                log.warning("learning paused, retrying in %.0f s: %s", backoff, self.last_error)
            except Exception:
                backoff = min(30.0, backoff * 2)
                log.exception("applying the learning log failed; retrying in %.0f s", backoff)

    async def _apply_logged(self) -> FlushResult:
        """Apply the entries the log holds unapplied to the database, in transactions of APPLY_ENTRIES
        at most, dropping each transaction's from the log once it commits."""
        learned = duplicates = 0
        while self._logged:
            result = await self._apply_some()
            learned += result.learned
            duplicates += result.duplicates
        return FlushResult(learned, duplicates)

    async def _apply_some(self) -> FlushResult:
        """Apply the first APPLY_ENTRIES entries the log holds unapplied in one transaction, then drop them."""
        log_ = self.log
        async with self._db.write_lock:
            entries = self._logged[:APPLY_ENTRIES]
            if log_ is None or not entries:
                return FlushResult(0, 0)
            await self._still_free()
            batch = [item for _, entry in entries for item in entry]
            last = entries[-1][0]
            result = await self.write(self._applying.commit(batch, last))
            self._learned(result, 0)
            del self._logged[: len(entries)]
            self._logged_n -= len(batch)
            self._forget_ids(batch)
            async with self._room:
                self._room.notify_all()
            await self.write(log_.drop(last), to_log=True)
            await self._after_commits()
        return result

    async def _merge_idle(self) -> None:
        """Nothing learned for a while: merge the deltas into the blocks for a while (bot.core.rolling)."""
        quiet = time.monotonic() - self._learned_at >= rolling.IDLE_AFTER * self.flush_interval
        if not self.idle_seconds or self._sized or self._pending or self._logged or not quiet:
            return
        if not self._applying.unmerged():
            self.idle_merged.set()
            return
        async with self._db.write_lock:
            await self._still_free()
            if not (self._pending or self._logged) and await self.write(
                self._applying.merge_idle(self.idle_seconds)
            ):
                self.idle_merged.set()

    async def _still_free(self) -> None:
        """Before a write to the database while learning is paused by another process's lock: fail at
        once while it still holds the file, so that neither a retry nor a report (which commits what is
        queued first) waits the busy timeout for it, holding the write lock."""
        held = self._held
        if held is not None and self._locked is not None and await asyncio.to_thread(self._locked):
            self.last_error = held
            raise DatabaseBusy(f"could not write to {self.path}: {held}")

    async def write(self, work: Awaitable[T], *, to_log: bool = False) -> T:
        """Await a write of the writer's (to_log: of the learning log's, to a file of its own); the engine's
        errors become a StoreError that says what failed (DiskFull when the disk refused it,
        DatabaseBusy when another process held the database)."""
        try:
            done = await work
        except self._errors as exc:
            code, state = getattr(exc, "sqlite_errorcode", None), getattr(exc, "sqlstate", None)
            kind = StoreError
            if code in DISK_FULL_CODES or state == PG_DISK_FULL:
                kind = DiskFull
            elif (code is not None and code & 0xFF in BUSY_CODES) or state == PG_LOCK_NOT_AVAILABLE:
                kind = DatabaseBusy
            self.last_error = f"disk full ({exc})" if kind is DiskFull else str(exc)
            if not to_log:
                self._held = self.last_error if kind is DatabaseBusy else None
            raise kind(f"could not write to {self.path}: {self.last_error}") from exc
        self.last_error = None
        if not to_log:
            self._held = None
        return done
