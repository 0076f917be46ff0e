"""Process pools that broke: a task given to one fails as BrokenProcessPool, whatever state it is in."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from bot.core import pools


async def test_a_pool_whose_queues_its_thread_closed_refuses_a_task_as_broken() -> None:
    """CPython 3.11: a killed process's pool closes its queues in its own thread; a submit that starts
    a process meanwhile pickles a closed pipe (OSError). Here the pipe is closed before the first task,
    which starts the pool's first process."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()
    try:
        pool._call_queue._reader.close()  # type: ignore[attr-defined]  # as the pool's thread does
        with pytest.raises(OSError, match="handle is closed"):
            pool.submit(abs, -4)  # what run_in_executor meets
        with pytest.raises(BrokenProcessPool, match=pools.BROKEN):
            pools.run(loop, pool, abs, -4)
        assert not pools.processes(pool)
    finally:
        await asyncio.to_thread(pools.stop, pool)


async def test_started_pool_has_every_process_before_its_first_task() -> None:
    """pools.start: the processes run (and import) before the first task, which finds them started."""
    pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
    loop = asyncio.get_running_loop()
    try:
        pools.start(pool, 2, os.getpid)
        started = {process.pid for process in pools.processes(pool)}
        assert len(started) == 2
        assert await pools.run(loop, pool, os.getpid) in started
        assert {process.pid for process in pools.processes(pool)} == started  # none started for the task
    finally:
        await asyncio.to_thread(pools.stop, pool)
