"""Where the walker runs for a Store: a process of its own, or a thread of this one; replaced if it dies."""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from bot.core import background, pools
from bot.core.sql import tune_sqlite
from bot.core.versions import Version
from bot.core.walker import Walker
from bot.core.walkercalls import Call, Pid

log = logging.getLogger(__name__)

WALKERS = ("thread", "process")  # where generation walks (see bot.core.walker)
# A walker process that has not answered a call in this long is stopped (SIGSTOP, a hung read)
# and replaced: every call takes milliseconds, a report's part a fraction of a second.
ANSWER_SECONDS = 30.0

T = TypeVar("T")


def answer(walker: Walker, version: Version, call: Call[T]) -> T:
    """Run a call on the walker, its caches brought to version first."""
    walker.sync(version)
    return call.run(walker)


class WalkerHost:
    """Starts, calls and stops the walker of one database: a SQLite file, or a PostgreSQL URL string."""

    def __init__(self, where: Path | str, cache_size: int, walker: str, cpu: int | None = None) -> None:
        if walker not in WALKERS:
            raise ValueError(f"walker must be one of {', '.join(WALKERS)}, not {walker!r}")
        self.where = where
        self.cache_size = cache_size
        self.mode = walker  # "thread" or "process"
        self.cpu = cpu  # the one CPU a walker process runs on (bot.core.background.Apart), or None: any
        self._key = b""  # the fingerprint key, once started
        self._process: WalkerProcess | None = None
        self._walker: Walker | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._replacing = asyncio.Lock()  # one replacement of a dead walker, however many calls saw it die
        self.pid: int | None = None  # the walker process, when there is one

    async def start(self, key: bytes) -> None:
        """Start the walker with the database's fingerprint key (and wait for a process to answer)."""
        self._key = key
        if self.mode == "process":
            self._process = await WalkerProcess(self.where, key, self.cache_size, self.cpu).start()
            self.pid = self._process.pid
            log.info("walker process %s started", self.pid)
        else:
            self._walker = Walker(self.where, key, self.cache_size)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="markov-walker")

    async def stop(self) -> None:
        """Stop the walker; a process ends when its pipe closes."""
        process, walker, thread = self._process, self._walker, self._thread
        self._process, self._walker, self._thread, self.pid = None, None, None, None
        if process is not None:
            await process.close()
        if walker is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, walker.close)
            await asyncio.to_thread(thread.shutdown)

    async def run(self, version: Version, call: Call[T]) -> T:
        """Run a call on the walker, its caches brought to version first.

        A walker process that died (killed, out of memory) is started again and the call retried once.
        """
        if self._walker is not None and self._thread is not None:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, answer, self._walker, version, call
            )
        process = self._process
        if process is None:
            raise RuntimeError("store is not open")
        try:
            return await process.run(version, call)
        except WalkerDied as exc:
            await self._replace(process, exc)
            if self._process is None:
                raise
            return await self._process.run(version, call)

    async def _replace(self, failed: WalkerProcess, why: WalkerDied) -> None:
        """Start another walker process in place of one that failed, unless a call that saw it fail too already did."""
        async with self._replacing:
            if self._process is not failed:
                return
            log.warning("%s; starting another", why)
            await self.stop()
            await self.start(self._key)


class WalkerDied(RuntimeError):
    """The walker process ended (killed, out of memory) before it answered."""


class WalkerProcess:
    """A Walker in a process of its own, driven from the event loop over a pipe.

    The event loop writes each call to the pipe and reads the answers when the pipe is readable:
    no thread in between (a process pool's feeder thread cost 0.6 ms a call). The process ends
    when the pipe closes: on close(), or when the bot's process dies, however it dies.
    """

    def __init__(self, where: Path | str, key: bytes, cache_size: int, cpu: int | None = None) -> None:
        self._args = (where, key, cache_size, cpu)  # a Path or a URL string: both pickle
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._answers: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()
        self.pid: int | None = None

    async def start(self) -> WalkerProcess:
        """Start the process and wait until it answers (the first reply does not wait for a Python)."""
        self._conn, self._process = pools.spawn(_serve, self._args, "markov-walker")
        asyncio.get_running_loop().add_reader(self._conn.fileno(), self._on_readable)
        try:
            self.pid = await self.run(Version(0, 0), Pid())
        except WalkerDied as exc:
            await self.close()
            raise WalkerDied(
                "the walker process did not start (its error is printed above); a script that opens "
                'the database must run its code under `if __name__ == "__main__":`, or use '
                "MARKOV_WALKER=thread"
            ) from exc
        return self

    async def run(self, version: Version, call: Call[T]) -> T:
        """Run a call in the process; raises WalkerDied if it ends first, or does not answer within
        ANSWER_SECONDS (then it is killed: every call waiting on it fails alike)."""
        if self._conn is None:
            raise WalkerDied("the walker process is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        call_id = next(self._ids)
        self._answers[call_id] = future
        try:
            self._conn.send((call_id, version, call))
        except OSError as exc:
            self._answers.pop(call_id, None)
            self._ended()
            raise WalkerDied("the walker process is gone") from exc
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                return await future
        except TimeoutError:
            why = f"the walker process did not answer in {ANSWER_SECONDS:g} s"
            if self._process is not None:
                self._process.kill()
            self._ended(why)
            raise WalkerDied(why) from None

    def _on_readable(self) -> None:
        assert self._conn is not None
        try:
            while self._conn.poll():
                call_id, ok, value = self._conn.recv()
                future = self._answers.pop(call_id, None)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except (EOFError, OSError):
            self._ended()

    def _ended(self, why: str = "the walker process ended before it answered") -> None:
        """The pipe closed (or the process was killed): fail what was waiting, and stop listening."""
        if self._conn is not None:
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None
        answers, self._answers = self._answers, {}
        for future in answers.values():
            if not future.done():
                future.set_exception(WalkerDied(why))

    async def close(self) -> None:
        """Close the pipe; the process ends on its own (killed if it has not within 5 s)."""
        self._ended()
        process, self._process = self._process, None
        if process is not None:
            await pools.join(process)


def _failed(call_id: int, error: RuntimeError) -> tuple[int, bool, object]:
    """The reply sent instead of an answer that does not pickle."""
    return (call_id, False, error)


def _serve(conn: Connection, where: Path | str, key: bytes, cache_size: int, cpu: int | None) -> None:
    """The walker process: answer calls until the pipe closes (on cpu only, when given)."""
    # Ctrl-C in a terminal reaches the whole process group: the bot shuts down, and closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cpu is not None:
        background.keep_to({cpu})
    tune_sqlite()
    walker = Walker(where, key, cache_size)
    try:
        while True:
            try:
                call_id, version, call = conn.recv()
            except (EOFError, OSError):
                return
            try:
                reply: tuple[int, bool, object] = (call_id, True, answer(walker, version, call))
            except Exception as exc:
                reply = (call_id, False, exc)
            if not pools.answer(conn, reply, functools.partial(_failed, call_id), "the walker"):
                return
    finally:
        walker.close()
