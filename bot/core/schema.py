"""The database file: identifying (or refusing) it, switching it to WAL, and applying migrations."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import aiosqlite

from bot.core.messagekeys import message_key
from bot.core.sql import Q

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a connection waits for another's lock; then a write fails (DatabaseBusy)
WAL_SWITCH_SECONDS = 10.0  # how long opening a file waits for another process switching it to WAL
APPLICATION_ID = 0x4D4B5642  # "MKVB" in the database header (PRAGMA application_id, migration 0003)
# What a markovbot database made before it had an application id holds (schema versions 1 and 2).
LEGACY_TABLES = frozenset({"meta", "tokens", "chains", "authors", "transitions", "messages", "windows"})


class SchemaTooNew(RuntimeError):
    """The database was written by a newer markovbot."""


class StoreError(RuntimeError):
    """The database cannot be written (read-only, disk full, locked ...)."""


class DatabaseBusy(StoreError):
    """Another process held the database's write lock past the busy timeout (an import, say)."""


class DiskFull(StoreError):
    """The disk refused the write: no space left, or the file may not grow."""


class NotMarkovbotDatabase(StoreError):
    """The file is not a markovbot database (another program's SQLite file, or not SQLite); left as it was."""


def migrations() -> list[tuple[int, str]]:
    folder = resources.files("bot.core").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_.+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text("utf-8")))
    return sorted(found)


SCHEMA_VERSION = migrations()[-1][0]

# The Python functions migrations call (0011: message_key), given to the connection that applies them.
MIGRATION_FUNCTIONS: tuple[tuple[str, int, Callable[..., object]], ...] = (("message_key", 2, message_key),)


async def enable_wal(conn: aiosqlite.Connection) -> None:
    """Switch the file to WAL, retrying while another process opening it at once holds it.

    Switching needs the file to itself, and SQLite answers "database is locked" at once, without
    its busy handler, when another connection is switching the same new file meanwhile.
    """
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


async def migrate(conn: aiosqlite.Connection, path: Path) -> None:
    """Apply the migrations this file lacks, in one transaction that first checks the file again.

    A file already up to date is only read (in a snapshot of its own), so it opens while another
    process holds the write lock (an import beside the bot, for minutes). Otherwise inside BEGIN
    IMMEDIATE: another process opening the same new file at once waits, then finds the schema made
    (statement by statement: executescript would commit the BEGIN).
    """
    for name, arity, function in MIGRATION_FUNCTIONS:
        await conn.create_function(name, arity, function, deterministic=True)
    await conn.execute("BEGIN")
    try:
        current = identify(path, *(await describe(conn)))
    finally:
        await conn.execute("COMMIT")
    if current == SCHEMA_VERSION:
        return
    await conn.execute("BEGIN IMMEDIATE")
    try:
        version = identify(path, *(await describe(conn)))
        for number, sql in migrations():
            if number <= version:
                continue
            log.info("applying migration %04d to %s", number, path)
            for statement in statements(sql):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number}")
        await conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise


async def describe(conn: aiosqlite.Connection) -> tuple[int, int, set[str]]:
    """(application_id, user_version, table names) of the database, on the writer."""
    values = []
    for pragma in ("application_id", "user_version"):
        async with conn.execute(f"PRAGMA {pragma}") as cur:
            row = await cur.fetchone()
        values.append(int(row[0]) if row else 0)
    async with conn.execute(Q["table_names"]) as cur:
        tables = {str(name) for (name,) in await cur.fetchall()}
    return values[0], values[1], tables


def identify(path: Path, application_id: int, version: int, tables: set[str]) -> int:
    """The schema version of a markovbot database (0: an empty file); raises when the store must refuse it."""
    if application_id == APPLICATION_ID:
        ours = True
    elif application_id != 0:
        ours = False
    elif tables:  # made before migration 0003, or by another program
        ours = tables >= LEGACY_TABLES and version >= 1
    else:  # an empty file; one with only a newer user_version is taken for a newer markovbot's
        ours = version == 0 or version > SCHEMA_VERSION
    if not ours:
        raise NotMarkovbotDatabase(
            f"cannot use the database {path}: it is another program's SQLite database, not markovbot's "
            "(left untouched); point MARKOV_DATABASE_URL at another file."
        )
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path} has schema version {version}, but this markovbot knows only up to "
            f"{SCHEMA_VERSION}: upgrade markovbot, or point MARKOV_DATABASE_URL at another file."
        )
    return version


def check_file(path: Path) -> None:
    """Refuse a file that is not a markovbot database this markovbot can use, before anything writes to it.

    Read as immutable: no lock, no -wal or -shm file made. While another process has the file open
    (its -wal or -journal beside it), a checkpoint under way leaves the file alone torn (page 1 new,
    the pages it points to not yet written): what the immutable read cannot make sense of is read
    again as SQLite's readers do, through the log. The migration's transaction checks again
    (another process may have changed the file since).
    """
    try:
        if path.stat().st_size == 0:
            return
    except FileNotFoundError:
        return
    uri = path.resolve().as_uri()
    described = _describe_file(f"{uri}?mode=ro&immutable=1")
    if isinstance(described, sqlite3.DatabaseError) and any(
        Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-journal")
    ):
        described = _describe_file(f"{uri}?mode=ro")
    if isinstance(described, sqlite3.DatabaseError):
        raise NotMarkovbotDatabase(
            f"cannot use the database {path}: it is not a SQLite database ({described}; left untouched); "
            "point MARKOV_DATABASE_URL at another file."
        )
    identify(path, *described)


def _describe_file(uri: str) -> tuple[int, int, set[str]] | sqlite3.DatabaseError:
    """(application_id, user_version, table names) of a database opened from a URI, or what SQLite
    said when what it read was no database (an open that fails raises, as before)."""
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        return application_id, version, {str(name) for (name,) in conn.execute(Q["table_names"])}
    except sqlite3.DatabaseError as exc:
        return exc
    finally:
        conn.close()


def statements(script: str) -> list[str]:
    """The statements of a migration file, one by one."""
    found, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            found.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise ValueError(f"a migration ends with an incomplete statement: {buffer.strip()[:60]!r}")
    return found


def probe(path: Path) -> None:
    """Open and close the database file with plain sqlite3; raises what SQLite raises."""
    sqlite3.connect(path).close()
