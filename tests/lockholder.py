"""Another process that holds a SQLite database's write lock, as an import's transaction does."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

LOCK_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # the write lock, held until told to let go
print("locked", flush=True)
sys.stdin.readline()
db.rollback()
"""


@contextlib.asynccontextmanager
async def holding_the_database(path: Path) -> AsyncIterator[None]:
    """A process holds the database's write lock until the block ends."""
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LOCK_HOLDER,
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert (await holder.stdout.readline()).strip() == b"locked"
        yield
    finally:
        holder.stdin.write(b"\n")
        await holder.stdin.drain()
        await holder.wait()


@contextlib.contextmanager
def holding_the_database_now(path: Path) -> Iterator[None]:
    """holding_the_database, for a test that is not a coroutine (the CLI runs its own event loop)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait()
