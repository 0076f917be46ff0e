"""Where the learning log's batches are applied to the database: by this process, or by a process of its own.

A bot that learns fast spent its one interpreter lock on two jobs: answering (the event loop) and
applying what the learning log holds (counting, sealing, the statements' Python side), while its
second core stayed mostly idle: at 5,000 msgs/s offered, its threads together used 96% of one core
and the walker 5% of the other (benchmarks/README.md). So a running bot's store (in_background)
applies the log's entries in a learning process: a second writer on the same file, NICE steps below
the bot, as any second process on a database is (SQLite's locks, and PRAGMA data_version dropping
each writer's caches when the other committed). The bot keeps tokenizing, logging and answering.

The bot sends each request over a pipe and waits for its reply; only one is in flight (the queue
holds its write lock meanwhile), so the bot's own writes (a forget, a new author) never wait on
SQLite's lock for the learning process's. Either writer's transaction commits whole or not at all:
a learning process killed mid-apply leaves the entries in the log, and the next one applies them
(a message already learned is dropped by its key, so nothing is counted twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from bot.core import background, pools
from bot.core.models import FlushResult, PendingMessage
from bot.core.sql import tune_sqlite
from bot.core.versions import ChainVersions

if TYPE_CHECKING:
    from bot.core.writer import Writer

log = logging.getLogger(__name__)

# While it applies, the learning process says so BEATS times every ANSWER_SECONDS (an apply may
# take long on a slow disk, or wait out another process's lock); one that has said nothing for
# ANSWER_SECONDS (stopped, or its interpreter stuck) is killed and replaced, the request sent again.
ANSWER_SECONDS = 60.0
BEATS = 6
BEAT = None  # what the learning process sends while it applies
ENDED = "the learning process ended before it answered"


class Applier(Protocol):
    """What applies the learning log's batches, and merges the deltas they leave while the bot is idle."""

    async def commit(self, batch: Sequence[PendingMessage], applied: int) -> FlushResult:
        """Learn a batch in one transaction, recording applied (the last log entry it holds) with it."""
        ...

    async def merge_idle(self, seconds: float) -> bool:
        """Merge deltas into blocks for up to seconds; True when no chain holds learned counts there."""
        ...

    async def find_unmerged(self) -> None:
        """At start: the chains a run before left counts in the deltas of."""
        ...

    def unmerged(self) -> bool:
        """True while some chain that learned may hold counts in the deltas."""
        ...

    async def close(self) -> None:
        """Let go of what applying holds."""
        ...

    @property
    def pid(self) -> int | None:
        """The learning process's id, when applying happens in one."""
        ...


class LocalApplier:
    """Applies with this process's writer (the caller holds the write lock)."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def commit(self, batch: Sequence[PendingMessage], applied: int) -> FlushResult:
        """Learn a batch in one of the writer's transactions."""
        return await self._writer.commit(batch, applied=applied)

    async def merge_idle(self, seconds: float) -> bool:
        """Merge deltas into blocks for up to seconds."""
        return await self._writer.merge_idle(seconds)

    async def find_unmerged(self) -> None:
        """At start: the chains a run before left counts in the deltas of."""
        await self._writer.find_unmerged()

    def unmerged(self) -> bool:
        """True while some chain that learned may hold counts in the deltas."""
        return self._writer.counts.unmerged

    async def close(self) -> None:
        """Nothing to let go of: the writer is the store's."""

    @property
    def pid(self) -> None:
        """None: applying happens in this process."""
        return None


@dataclass(frozen=True)
class Commit:
    """Learn a batch (a request to the learning process)."""

    batch: Sequence[PendingMessage]
    applied: int


@dataclass(frozen=True)
class MergeIdle:
    """Merge deltas into blocks for up to seconds (a request to the learning process)."""

    seconds: float


@dataclass(frozen=True)
class FindUnmerged:
    """Look for the chains a run before left counts in the deltas of (a request to the learning process)."""


Request = Commit | MergeIdle | FindUnmerged


class Reply(NamedTuple):
    """The learning process's answer: the request's value or error, and what its writer changed."""

    ok: bool
    value: Any  # the request's value (FlushResult, bool, None), or the exception it raised
    wrote: list[int]  # chains written (the bot's versions are told: its walker's caches check them)
    hubs_changed: bool
    unmerged: bool


class Options(NamedTuple):
    """The store's settings the learning process's writer needs (a process cannot share a clock)."""

    cache_size: int
    hub_rows: int
    edit_window_days: int
    merge_rows: int


class ApplierDied(RuntimeError):
    """The learning process ended (killed, out of memory) before it answered."""


class ProcessApplier:
    """Applies in a learning process of its own, started again (and the request sent again) if it died."""

    def __init__(self, path: Path, key: bytes, options: Options, versions: ChainVersions) -> None:
        self._args = (path, key, options)
        self._versions = versions  # the bot's: told what the learning process wrote
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._unmerged = False

    async def start(self) -> ProcessApplier:
        """Start the process and wait until its store is open."""
        beat = ANSWER_SECONDS / BEATS
        self._conn, self._process = pools.spawn(_serve, (*self._args, beat), "markov-learning")
        try:
            await asyncio.to_thread(self._ready)
        except ApplierDied as exc:
            await self.close()
            raise ApplierDied(
                "the learning process did not start (its error is logged above); a script that opens "
                'the database in the background must run its code under `if __name__ == "__main__":`'
            ) from exc
        log.info("learning process %s started", self._process.pid)
        return self

    def _ready(self) -> None:
        """Wait for the process's first word: None once its store is open, or why it could not open."""
        assert self._conn is not None
        try:
            error = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise ApplierDied("the learning process ended before it was ready") from exc
        if error is not None:
            raise error

    @property
    def pid(self) -> int | None:
        """The learning process's id, while it runs."""
        return self._process.pid if self._process is not None else None

    async def commit(self, batch: Sequence[PendingMessage], applied: int) -> FlushResult:
        """Learn a batch in the learning process."""
        result: FlushResult = await self._call(Commit(list(batch), applied))
        return result

    async def merge_idle(self, seconds: float) -> bool:
        """Merge deltas into blocks in the learning process, for up to seconds."""
        merged: bool = await self._call(MergeIdle(seconds))
        return merged

    async def find_unmerged(self) -> None:
        """At start: the chains a run before left counts in the deltas of (the learning process's writer)."""
        await self._call(FindUnmerged())

    def unmerged(self) -> bool:
        """True while some chain the learning process learned may hold counts in the deltas."""
        return self._unmerged

    async def _call(self, request: Request) -> Any:
        """Send a request and wait for its reply; a process that died is started again and asked once more."""
        try:
            reply = await self._roundtrip(request)
        except ApplierDied as exc:
            log.warning("%s; starting another", exc)
            await self.close()
            await self.start()
            if isinstance(request, MergeIdle | FindUnmerged):  # what the process before knew is gone
                await self._roundtrip(FindUnmerged())
            reply = await self._roundtrip(request)
        for chain_id in reply.wrote:
            self._versions.wrote(chain_id)
        if reply.hubs_changed:
            self._versions.hubs_changed()
        self._unmerged = reply.unmerged
        if not reply.ok:
            raise reply.value
        return reply.value

    async def _roundtrip(self, request: Request) -> Reply:
        if self._conn is None:
            await self.start()
        conn = self._conn
        assert conn is not None

        def listen() -> Reply | None:
            """The reply, once the process sends it; None if it said nothing for ANSWER_SECONDS."""
            try:
                while conn.poll(ANSWER_SECONDS):
                    reply: Reply | None = conn.recv()
                    if reply is not BEAT:
                        return reply
            except (EOFError, OSError) as exc:
                raise ApplierDied(ENDED) from exc
            return None

        try:
            async with asyncio.timeout(ANSWER_SECONDS):  # a stopped process reads nothing: a long batch waits
                await asyncio.to_thread(conn.send, request)
            reply = await asyncio.to_thread(listen)
        except OSError as exc:
            raise ApplierDied(ENDED) from exc
        except TimeoutError:
            reply = None
        if reply is None:
            await self._kill()
            raise ApplierDied(f"the learning process did not answer in {ANSWER_SECONDS:g} s")
        return reply

    async def _kill(self) -> None:
        """End a process that stopped answering (before the pipe closes: a thread still sending then fails)."""
        if self._process is not None:
            self._process.kill()
            await asyncio.to_thread(self._process.join)

    async def close(self) -> None:
        """Close the pipe; the process ends on its own (killed if it has not within 5 s)."""
        conn, process = self._conn, self._process
        self._conn = self._process = None
        if conn is not None:
            conn.close()
        if process is not None:
            await pools.join(process)


def _serve(conn: Connection, path: Path, key: bytes, options: Options, beat: float) -> None:
    """The learning process: answer requests until the pipe closes."""
    # Ctrl-C in a terminal reaches the whole process group: the bot shuts down, and closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # every thread made from here on inherits it (Linux)
        os.nice(background.NICE)
    tune_sqlite()
    asyncio.run(_apply(conn, path, key, options, beat))


async def _apply(conn: Connection, path: Path, key: bytes, options: Options, beat: float) -> None:
    from bot.core.store import Store  # the store starts this process

    store = Store(
        path,
        key=key,
        cache_size=options.cache_size,
        hub_rows=options.hub_rows,
        edit_window_days=options.edit_window_days,
        merge_rows=options.merge_rows,
        learning_log=False,
        idle_merge_seconds=0,  # merged when the bot asks (MergeIdle)
    )
    try:
        await store.open()
    except Exception as exc:
        conn.send(exc)
        return
    try:
        conn.send(None)
        writer = store.writes
        applier = LocalApplier(writer)
        while True:
            try:
                request: Request = await asyncio.to_thread(conn.recv)
            except (EOFError, OSError):
                return
            before = store.versions.counters()
            try:
                async with writer.lock, _beating(conn, beat):
                    value: Any = await _run(applier, request)
                ok = True
            except Exception as exc:
                ok, value = False, exc
            wrote, hubs = store.versions.since(before)
            if not _send(conn, Reply(ok, value, wrote, hubs, applier.unmerged())):
                return
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _beating(conn: Connection, seconds: float) -> AsyncIterator[None]:
    """Tell the bot every so many seconds that the request is still under way."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(seconds)
            conn.send(BEAT)

    beats = asyncio.create_task(beat())
    try:
        yield
    finally:
        beats.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await beats


def _send(conn: Connection, reply: Reply) -> bool:
    """Send a reply (one whose value does not pickle as a RuntimeError saying so); False: the pipe is closed."""
    return pools.answer(
        conn, reply, lambda error: reply._replace(ok=False, value=error), "the learning process"
    )


async def _run(applier: LocalApplier, request: Request) -> Any:
    """Run one request with the learning process's writer (its write lock held)."""
    if isinstance(request, Commit):
        return await applier.commit(request.batch, request.applied)
    if isinstance(request, MergeIdle):
        return await applier.merge_idle(request.seconds)
    return await applier.find_unmerged()
