"""Where the walker runs for a Store: a process of its own, or a thread of this one; replaced if it dies."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.core.walker import Version, Walker, WalkerDied, WalkerProcess

log = logging.getLogger(__name__)

WALKERS = ("thread", "process")  # where generation walks (see bot.core.walker)


class WalkerHost:
    """Starts, calls and stops the walker of one database."""

    def __init__(self, path: Path, key: bytes, cache_size: int, where: str) -> None:
        if where not in WALKERS:
            raise ValueError(f"walker must be one of {', '.join(WALKERS)}, not {where!r}")
        self._args = (path, key, cache_size)
        self.where = where
        self._process: WalkerProcess | None = None
        self._walker: Walker | None = None
        self._thread: ThreadPoolExecutor | None = None
        self.pid: int | None = None  # the walker process, when there is one

    async def start(self) -> None:
        """Start the walker (and wait for a process to answer)."""
        if self.where == "process":
            self._process = await WalkerProcess(*self._args).start()
            self.pid = self._process.pid
            log.info("walker process %s started", self.pid)
        else:
            self._walker = Walker(*self._args)
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

    async def call(self, method: str, version: Version, *args: Any) -> Any:
        """Run a Walker method, its caches brought to version first.

        A walker process that died (killed, out of memory) is started again and the call retried once.
        """
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
            await self.stop()
            await self.start()
            assert self._process is not None
            return await self._process.call(method, version, *args)
