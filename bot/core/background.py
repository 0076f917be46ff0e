"""Learning in the background: the threads that learn give the CPU to the ones that answer.

A running bot that learns fast has more runnable threads than cores: the event loop and the
walker process (answering), and the writer's SQLite connections and the threads that count and
seal batches (learning). The kernel shares the cores evenly among them unless told otherwise, so a
reply waited its turn behind learning's. Linux keeps a nice value per thread: a bot's learning
threads run NICE steps below the rest, and take what answering leaves (benchmarks/README.md,
2026-12-02: the live row's guarded p99 20.6 -> 18.2 ms mean of 5 alternated pairs, about as many
messages applied).

A running bot's walker process also keeps a CPU of its own, when it may use two or more (Apart):
woken by the event loop's request, it was often placed on the loop's CPU and waited behind it
(benchmarks/README.md, 2026-12-04: the live row's guarded p99 19.4 -> 14.5 ms, mean of three
alternated pairs, as many messages made durable within 1%).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

NICE = 10  # steps of nice below the thread's own (19 at most): a weight about a tenth of the loop's


def lower_this_thread() -> None:
    """Run the calling thread NICE steps of nice lower (Linux only: elsewhere nice is per process)."""
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):  # forbidden (a sandbox): learning then runs level with answering
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))


class Connection(sqlite3.Connection):
    """A sqlite3 connection that moves the thread it is made in (aiosqlite's own) to the background."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        lower_this_thread()
        super().__init__(*args, **kwargs)


def factory(in_background: bool) -> type[sqlite3.Connection]:
    """What aiosqlite.connect makes a store's writing connection with: this one, or sqlite3's own."""
    return Connection if in_background else sqlite3.Connection


def executor() -> ThreadPoolExecutor:
    """A thread pool whose threads run in the background: a running bot's event loop's default."""
    return ThreadPoolExecutor(thread_name_prefix="markov-background", initializer=lower_this_thread)


def keep_to(cpus: Collection[int]) -> None:
    """Run every thread of this process, and so each it starts from now on, on these CPUs only (Linux)."""
    if sys.platform != "linux":
        return
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile; a sandbox that forbids it
            os.sched_setaffinity(int(task), cpus)


class Apart:
    """A running bot's CPUs shared out: its walker process on one of its own, this process's
    threads on the others (nothing changes with fewer than two, or off Linux)."""

    def __init__(self) -> None:
        self.cpus = frozenset(os.sched_getaffinity(0)) if sys.platform == "linux" else frozenset()
        self.walker = max(self.cpus) if len(self.cpus) > 1 else None  # the walker process's CPU

    def begin(self) -> None:
        """Move this process's threads off the walker's CPU (its other processes already started)."""
        if self.walker is not None:
            keep_to(self.cpus - {self.walker})

    def end(self) -> None:
        """Give this process's threads every CPU they had before."""
        if self.walker is not None:
            keep_to(self.cpus)
