"""The learning queue: messages waiting to be learned, and the flusher that commits them in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from pathlib import Path
from typing import TypeVar

from bot.core import rolling
from bot.core.connections import Connections
from bot.core.models import FlushResult, PendingMessage
from bot.core.schema import StoreError
from bot.core.writer import Writer

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLite's codes for a write the disk refused: no space left (ENOSPC), or the file may not grow (EFBIG).
DISK_FULL_CODES = frozenset({13, 778})  # SQLITE_FULL, SQLITE_IOERR_WRITE


class LearningQueue:
    """Queued learning, committed at most every flush_interval seconds or batch_size messages."""

    def __init__(
        self,
        db: Connections,
        writer: Writer,
        *,
        path: Path | str,
        errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError, sqlite3.DatabaseError),
        flush_interval: float,
        batch_size: int,
        max_pending: int,
        idle_seconds: float,
    ) -> None:
        self._db = db
        self._writer = writer
        self.path = path
        self._errors = errors  # what a failed write raises on this engine
        self.flush_interval = flush_interval
        self.idle_seconds = idle_seconds  # merging deltas while idle, once an interval (0: never)
        self._learned_at = -math.inf  # time.monotonic() of the last commit that learned something
        #: Set once merging while idle has left no learned counts in the deltas (cleared by learning).
        self.idle_merged = asyncio.Event()
        self.batch_size = batch_size
        self.max_pending = max_pending
        self._pending: list[PendingMessage] = []
        self._pending_ids: set[tuple[str, str]] = set()
        self._room = asyncio.Condition()
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._sized = False  # inside sized(): the flusher commits full batches only
        self._failure: StoreError | None = None  # why an import's transaction failed (inside sized())
        self.last_error: str | None = None
        #: Totals since open: messages committed, and messages dropped as already learned.
        self.committed = 0
        self.duplicates = 0

    @contextlib.asynccontextmanager
    async def sized(
        self, batch_size: int, max_pending: int, staged_bytes: int, seconds: float
    ) -> AsyncIterator[None]:
        """An import, until the block ends: full batches of batch_size only, up to max_pending held,
        in one transaction that commits once its staged counts reach staged_bytes or it has been
        open for seconds, and at the end.

        A failed commit rolls back every batch since the last one, so the import stops there: the
        next enqueue (or the end of the block) raises the StoreError; what was committed is kept.
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
                await self._write(self._writer.end_bulk())
            async with self._room:
                self._room.notify_all()
        if self._failure is not None:
            raise self._failure

    def start(self) -> None:
        """Start the flusher."""
        self._flusher = asyncio.create_task(self._flush_loop(), name="markov-flusher")

    async def stop(self) -> None:
        """Stop the flusher (what is pending stays queued)."""
        if self._flusher is not None:
            # Stopped by a flag, not cancelled: on Python 3.11 a cancel that races the wake-up
            # event can be swallowed by the wait, and the flusher would never end.
            self._closing = True
            self._wake.set()
            await self._flusher
            self._flusher = None

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

    async def enqueue_many(self, messages: Sequence[PendingMessage]) -> int:
        """Queue messages in order as enqueue() would one by one (waiting while the queue is full); how many were."""
        queued = done = 0
        while done < len(messages):
            async with self._room:
                await self._room.wait_for(lambda: len(self._pending) < self.max_pending or self._failure)
                if self._failure is not None:
                    raise self._failure
                room = self.max_pending - len(self._pending)
                for message in messages[done : done + room]:
                    key = (message.platform, message.message_id)
                    if key not in self._pending_ids:
                        self._pending.append(message)
                        self._pending_ids.add(key)
                        queued += 1
                done += room
            if len(self._pending) >= self.batch_size:
                self._wake.set()
                await asyncio.sleep(0)
        return queued

    async def _flush_loop(self) -> None:
        backoff = self.flush_interval
        if self.idle_seconds:
            try:
                await self._writer.find_unmerged()
            except self._errors as exc:  # merged once the chain learns again
                log.warning("could not look for counts left to merge: %s", exc)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
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

    async def flush(self, *, full_only: bool = False) -> FlushResult:
        """Commit everything queued (full_only: only full batches), in batches of at most batch_size messages."""
        learned = duplicates = 0
        async with self._db.write_lock:
            while self._pending and (not full_only or len(self._pending) >= self.batch_size):
                batch = self._pending[: self.batch_size]
                result = await self._write(self._writer.commit(batch))
                self.committed += result.learned
                self.duplicates += result.duplicates
                learned += result.learned
                duplicates += result.duplicates
                if result.learned:
                    self._learned_at = time.monotonic()
                async with self._room:
                    del self._pending[: len(batch)]
                    for item in batch:
                        self._pending_ids.discard((item.platform, item.message_id))
                    self._room.notify_all()
            if self._writer.prune_due():
                await self._write(self._writer.prune())
            if self._writer.counts.unmerged:
                self.idle_merged.clear()
        return FlushResult(learned, duplicates)

    async def _merge_idle(self) -> None:
        """Nothing learned for a while: merge the deltas into the blocks for a while (bot.core.rolling)."""
        quiet = time.monotonic() - self._learned_at >= rolling.IDLE_AFTER * self.flush_interval
        if not self.idle_seconds or self._sized or self._pending or not quiet:
            return
        if not self._writer.counts.unmerged:
            self.idle_merged.set()
            return
        async with self._db.write_lock:
            if not self._pending and await self._write(self._writer.merge_idle(self.idle_seconds)):
                self.idle_merged.set()

    async def _write(self, work: Awaitable[T]) -> T:
        """Await a write of the writer's; SQLite's errors become a StoreError that says what failed."""
        try:
            done = await work
        except self._errors as exc:
            full = getattr(exc, "sqlite_errorcode", None) in DISK_FULL_CODES
            self.last_error = f"disk full ({exc})" if full else str(exc)
            raise StoreError(f"could not write to {self.path}: {self.last_error}") from exc
        self.last_error = None
        return done
