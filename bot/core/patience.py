"""A change the database cannot take now, tried again until it can, and kept meanwhile.

A delete, an edit or a new member's first message that meets a database another process holds (an
import's transaction, for up to its commit interval) or a full disk waits its turn instead of being
lost: tried again, backing off, for up to PATIENCE seconds or until the Brain closes. From its first
refusal it is kept in the learning log (bot.core.deferred), so that neither a restart meanwhile nor a
wait in vain loses it: catch_up() makes what the log keeps, at a start and after a wait in vain,
trying again until the database takes each change or the Brain closes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.core.deferred import Deferred
from bot.core.schema import DatabaseBusy, DiskFull, StoreError
from bot.core.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a change waits its turn: an import beside the bot holds the database for up to its commit
# interval (MARKOV_IMPORT_COMMIT_SECONDS, 300 s).
PATIENCE = 900.0
BACKOFF_MIN, BACKOFF_MAX = 1.0, 15.0  # seconds between tries: the first wait, doubled up to the last


@dataclass
class Debt:
    """A change being made: what it is, and its number in the learning log once kept there."""

    change: Deferred
    number: int | None = None
    told: bool = False  # its wait was logged (once: catch_up() tries it again and again)


class Patience:
    """Runs a change's steps again while the database refuses them; keeps the change meanwhile."""

    def __init__(self, store: Store, make: Callable[[Deferred, Debt], Awaitable[object]]) -> None:
        self._store = store
        self._make = make  # makes a kept change again, as the call it was (the Brain's)
        self._stopping = asyncio.Event()
        self._sleeping: set[asyncio.Task[object]] = set()  # tasks in their backoff now
        self.catching_up: asyncio.Task[int] | None = None  # the last catch_up()'s

    async def settle(self, debt: Debt, work: Awaitable[T]) -> T:
        """A call's work; its change, if kept, dropped once done, or left to catch_up() when refused."""
        try:
            done = await work
        except StoreError:
            if debt.number is not None and not self._stopping.is_set():
                self.catch_up()
            raise
        await self._paid(debt)
        return done

    async def run(self, what: str, work: Callable[[], Awaitable[T]], debt: Debt) -> T:
        """work() once the database takes it; StoreError after PATIENCE seconds or once stopped (what:
        "unlearning message 123", for the log; debt: the change work is a step of)."""
        started, delay, failed = time.monotonic(), BACKOFF_MIN, False
        while True:
            try:
                done = await work()
            except StoreError as exc:
                kept = await self._keep(what, debt, quiet=debt.told)
                if not debt.told:
                    log.warning("%s waits: %s", what, exc)
                failed = debt.told = True
                if time.monotonic() - started < PATIENCE and not self._stopping.is_set():
                    await self._backoff(delay)
                if time.monotonic() - started >= PATIENCE or self._stopping.is_set():
                    if kept:  # said in the one line the caller logs
                        kind = next(k for k in (DatabaseBusy, DiskFull, StoreError) if isinstance(exc, k))
                        raise kind(f"{exc}; kept, to be made once the database takes it") from exc
                    raise
                delay = min(BACKOFF_MAX, 2 * delay)
                continue
            if failed:
                log.info("%s went through after waiting %.0f s", what, time.monotonic() - started)
            return done

    def catch_up(self) -> asyncio.Task[int]:
        """Make the changes the learning log keeps, in the background, until each is made or stop();
        the task returns how many it made (already running: that task)."""
        if self.catching_up is None or self.catching_up.done():
            self.catching_up = asyncio.create_task(self._catch_up())
        return self.catching_up

    async def _catch_up(self) -> int:
        made, told, broken, debts = 0, False, set[int](), dict[int, Debt]()
        while not self._stopping.is_set():
            kept = [
                (number, change) for number, change in await self._store.deferred() if number not in broken
            ]
            if not kept:
                break
            for number, change in kept:
                debt = debts.setdefault(number, Debt(change, number, told=told))
                try:
                    await self._make(change, debt)
                except StoreError as exc:  # still refused: all of them wait, in order
                    if not told:
                        why = exc.__cause__ or exc  # without its "kept" part
                        log.warning("%d kept changes wait for the database: %s", len(kept), why)
                        told = True
                    await self._backoff(BACKOFF_MAX)
                    break
                except Exception:  # never expected; left for the next start, not tried again in a loop
                    log.exception("a change kept for later failed; it is left for the next start")
                    broken.add(number)
                    continue
                await self._paid(debt)
                made += 1
        if made:
            log.info("%d kept changes were made", made)
        return made

    async def drop(self, which: Callable[[Deferred], bool]) -> int:
        """Drop the kept changes which() picks, made or not (a forgotten member's); how many. One being
        made now goes on (its number is never given to another change) and is not kept again; a log
        that refuses leaves them to be made, which changes nothing of a forgotten member's."""
        dropped = 0
        try:
            for number, change in await self._store.deferred():
                if which(change):
                    await self._store.done(number)
                    dropped += 1
        except StoreError as exc:
            log.warning("changes kept for later could not be dropped from the learning log: %s", exc)
        return dropped

    async def stop(self) -> None:
        """Changes waiting their turn stop waiting (kept for the next start), new ones try once, and
        catch_up() ends once its change in hand is made or refused."""
        self._stopping.set()
        for task in self._sleeping:
            task.cancel()
        if self.catching_up is not None:
            await asyncio.wait([self.catching_up])

    async def _backoff(self, delay: float) -> None:
        """Sleep delay seconds (the writer that holds the file decides when), or until stop()."""
        task = asyncio.current_task()
        assert task is not None
        self._sleeping.add(task)
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # stop() cancels only tasks asleep here, where no write is half done; any other cancel goes on
            if not self._stopping.is_set() or task.uncancel() > 0:
                raise
        finally:
            self._sleeping.discard(task)

    async def _keep(self, what: str, debt: Debt, *, quiet: bool) -> bool:
        """Keep the change in the learning log, once; whether it is kept there."""
        if debt.number is None:
            try:
                debt.number = await self._store.defer(debt.change)
            except StoreError as exc:
                if not quiet:
                    log.warning("%s cannot be kept for later: %s", what, exc)
        return debt.number is not None

    async def _paid(self, debt: Debt) -> None:
        """The change is made: drop it from the learning log, if it was kept there."""
        if debt.number is None:
            return
        try:
            await self._store.done(debt.number)
        except StoreError as exc:  # made again later, which changes nothing
            log.warning("a change made could not be dropped from the learning log: %s", exc)
        debt.number = None
