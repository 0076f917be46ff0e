"""Process pools stopped for sure: after one of their processes was killed, too; and a child over a pipe.

A worker killed while it sends a result leaves CPython 3.11's pool waiting for the rest of that
message forever, and a pool broken by a kill can wait forever for a process it asked to end; then
`shutdown` waits with it. `stop` kills and joins every process first, and closes the result pipe's
writing end, so that the pool's own thread sees the pool broken and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

T = TypeVar("T")

BROKEN = "a process of the pool ended while another was being started for it"


def processes(pool: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    """The pool's processes (none before its first task)."""
    return list((pool._processes or {}).values())


def died(pool: ProcessPoolExecutor) -> bool:
    """True when one of the pool's processes has ended (a pool is only ever shut down by stop)."""
    return any(process.exitcode is not None for process in processes(pool))


def stop(pool: ProcessPoolExecutor) -> None:
    """Shut the pool down: what is queued is dropped, a task under way finishes, its processes are joined."""
    if died(pool):
        for process in processes(pool):
            process.kill()
            process.join()
        pool._result_queue._writer.close()  # type: ignore[attr-defined]
    pool.shutdown(wait=True, cancel_futures=True)


def start(pool: ProcessPoolExecutor, workers: int, ready: Callable[[], object]) -> None:
    """Start a pool's processes now, not as its tasks come: each runs ready (a module-level function
    of the module its tasks are in, which the process then imports meanwhile). A pool that broke
    meanwhile shows at the first task (run).

    All at once, before its first task: CPython 3.11 starts a process for each task no idle process
    takes, adding it to the dict of processes from the submitting thread, while the pool's own
    thread, once a process was killed, iterates that dict ("dictionary changed size during
    iteration", in that thread). Started here, before that thread exists, the dict never changes.
    """
    with pool._shutdown_lock:  # what submit holds to start one
        pool._launch_processes()  # type: ignore[attr-defined]
    for _ in range(workers):
        with contextlib.suppress(BrokenProcessPool, OSError, ValueError):  # as run meets them
            pool.submit(ready)


def run(
    loop: asyncio.AbstractEventLoop, pool: ProcessPoolExecutor, fn: Callable[..., T], *args: object
) -> asyncio.Future[T]:
    """loop.run_in_executor on a process pool, BrokenProcessPool when the pool broke meanwhile.

    CPython 3.11 starts a pool's processes as tasks come; when one of them was killed, the pool's
    thread closes its queues while a submit may be starting a process with them, and the submit
    fails with OSError ("handle is closed") or ValueError ("bad value(s) in fds_to_keep": the
    pipe was closed as the process started) instead of BrokenProcessPool.
    """
    try:
        return loop.run_in_executor(pool, fn, *args)
    except (OSError, ValueError) as exc:
        raise BrokenProcessPool(BROKEN) from exc


def spawn(target: Callable[..., None], args: tuple[Any, ...], name: str) -> tuple[Connection, BaseProcess]:
    """Start target(their end of a pipe, *args) in a spawned daemon process: (our end, the process).

    Our end is the only one left open here, so it reads EOF when the process ends, and the process
    reads EOF when we close it (or this process dies, however it dies).
    """
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=target, args=(theirs, *args), name=name, daemon=True)
    process.start()
    theirs.close()
    return ours, process


async def join(process: BaseProcess, seconds: float = 5.0) -> None:
    """Wait for a process whose pipe was closed to end, killing it if it has not within seconds."""
    await asyncio.to_thread(process.join, seconds)
    if process.is_alive():
        process.kill()
        await asyncio.to_thread(process.join)


def answer(conn: Connection, reply: object, instead: Callable[[RuntimeError], object], who: str) -> bool:
    """Send a child's reply over its pipe; one that does not pickle goes as instead(an error saying so)
    (pickled whole before anything is written: a failure sends nothing). False: the pipe is closed."""
    try:
        conn.send(reply)
    except OSError:
        return False
    except Exception as exc:
        return answer(conn, instead(RuntimeError(f"{who} could not send its answer: {exc!r}")), instead, who)
    return True
