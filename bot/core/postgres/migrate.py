"""`markovbot migrate`: copy a SQLite markovbot database, whole, into an empty PostgreSQL database.

The source is read inside one SQLite read transaction: a snapshot, consistent while a bot goes on
writing the file (WAL: its commits wait for no one, and the copy sees none of them). Learning after
the snapshot is simply not copied; a forget, unlearn or consent change after it would be undone by
the bot on PostgreSQL, so the copy checks the file once more before it commits, and refuses then.
The target is written in one PostgreSQL transaction (its schema's migration included), its tables
locked against other writers first: a copy that fails or is killed leaves the target as it was, and
running it again copies from the start. A copy resumed in parts would stitch two snapshots of a live
source; a restart costs only the copy's time (seconds for 100,000 messages), and memory stays
bounded (rows stream from a cursor CHUNK at a time into COPY). A finished copy records a digest of
what it read (meta, COPIED_META): running it again is a no-op while the source is unchanged.

Ids are copied as they are (COPY writes identity columns as given), so the blocks' packed token and
author ids stay true, and each sequence continues where SQLite's counters were. The fingerprint key
is not copied, only its check value (meta), as on SQLite: the store on PostgreSQL needs the same key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bot.core import keys, learnlog
from bot.core.engines import PostgresUrl
from bot.core.postgres import schema as pg_schema
from bot.core.postgres.connections import one_line
from bot.core.schema import APPLICATION_ID, LEGACY_TABLES, SCHEMA_VERSION, StoreError
from bot.core.sql import Q

PQ = pg_schema.PQ
CHUNK = 5_000  # rows read from SQLite at a time
CONNECT_SECONDS = 10.0
COPIED_META = "migrated_from"  # the meta row on PostgreSQL saying which source the copy was made from
Row = tuple[Any, ...]


def _settings_row(row: Row) -> Row:
    """guild_settings: SQLite's 0/1 and REAL as PostgreSQL's booleans and double."""
    platform, guild, order, reply, chime, run_length, guard = row
    return (platform, guild, order, bool(reply), float(chime), run_length, bool(guard))


def _chains_row(row: Row) -> Row:
    """chains: SQLite's 0/1 rows_incomplete as PostgreSQL's boolean."""
    return (*row[:-1], bool(row[-1]))


# The tables copied, in order (the SQLite statement migrate_<name> reads each; PostgreSQL's columns
# have the same names), and the conversion a row needs, if any.
TABLES: tuple[tuple[str, Callable[[Row], Row] | None], ...] = (
    ("meta", None),
    ("consent", None),
    ("enabled_channels", None),
    ("guild_settings", _settings_row),
    ("tokens", None),
    ("authors", None),
    ("chains", _chains_row),
    ("messages", None),
    ("recent_messages", None),
    ("transitions", None),
    ("transitions_back", None),
    ("windows", None),
    ("transition_blocks", None),
    ("window_blocks", None),
)
# counters: made PostgreSQL's sequences and counters (migrate_next_ids). hubs: derived from the counts,
# and off on PostgreSQL (bot/core/hubcache.py: no writer there keeps them exact), so a copied hub would
# go stale at the next learning or forget while walks still read it.
NOT_COPIED = frozenset({"counters", "hubs"})
SOURCE_TABLES = frozenset(name for name, _ in TABLES) | NOT_COPIED
# The tables whose ids come from an identity sequence on PostgreSQL, in migrate_next_ids' order.
IDENTITY_TABLES = ("tokens", "authors", "chains", "transition_blocks", "window_blocks")


class MigrateRefused(StoreError):
    """The copy was refused or failed; nothing was changed in the target (bot/errors.py words each)."""


@dataclass(eq=False)
class SourceMissing(MigrateRefused):
    path: Path


@dataclass(eq=False)
class SourceNotMarkovbot(MigrateRefused):
    path: Path
    why: str


@dataclass(eq=False)
class SourceUnreadable(MigrateRefused):
    """SQLite cannot read the file now (no permission, locked by a writer stuck in recovery ...)."""

    path: Path
    reason: str


@dataclass(eq=False)
class SourceTooNew(MigrateRefused):
    path: Path
    version: int


@dataclass(eq=False)
class SourceNeedsUpgrade(MigrateRefused):
    """An older schema, or the key still in the database: opening it once with this markovbot fixes both."""

    path: Path
    version: int


@dataclass(eq=False)
class SourceLogUnapplied(MigrateRefused):
    """The learning log beside the file holds batches a stopped bot did not apply (opening it applies them)."""

    path: Path


@dataclass(eq=False)
class SourceChangesKept(MigrateRefused):
    """The learning log keeps deletes, edits or first messages the file refused while busy (bot.core.deferred)."""

    path: Path


@dataclass(eq=False)
class SourceChanged(MigrateRefused):
    """While it was copied, the source forgot or unlearned something, or consent or a channel changed."""

    path: Path


@dataclass(eq=False)
class SourceKeyRefused(MigrateRefused):
    reason: str


@dataclass(eq=False)
class TargetUnreachable(MigrateRefused):
    url: PostgresUrl
    reason: str


@dataclass(eq=False)
class TargetNotMarkovbot(MigrateRefused):
    url: PostgresUrl
    tables: int


@dataclass(eq=False)
class TargetTooNew(MigrateRefused):
    url: PostgresUrl
    version: int


@dataclass(eq=False)
class TargetOtherKey(MigrateRefused):
    url: PostgresUrl


@dataclass(eq=False)
class TargetNotEmpty(MigrateRefused):
    url: PostgresUrl
    tables: list[str]


@dataclass(eq=False)
class TargetOtherCopy(MigrateRefused):
    """The target holds a copy made earlier, of another source or of this one before it changed."""

    url: PostgresUrl
    source: str
    at: int


@dataclass(eq=False)
class CopyFailed(MigrateRefused):
    url: PostgresUrl
    reason: str


@dataclass(eq=False)
class Outcome:
    """What a run did: rows copied per table (empty when the target already held this copy)."""

    source: Path
    url: PostgresUrl
    key_file: Path | None  # where the key was found; None: MARKOV_FINGERPRINT_KEY
    rows: dict[str, int] = field(default_factory=dict)
    copied_at: int = 0  # unix seconds of the copy (an earlier run's, when there was nothing to do)
    seconds: float = 0.0
    already: bool = False


Progress = Callable[[int, int], None]  # (rows just copied, rows in all)


class Snapshot:
    """The source inside one read transaction: every read sees the file as it was when it began."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self.digest = hashlib.blake2b(digest_size=16)

    @classmethod
    def open(cls, path: Path, key: bytes | None) -> tuple[Snapshot, Path | None]:
        """Open and check the source; also (where its key file is, or None when the key is given)."""
        if not path.exists():
            raise SourceMissing(path)
        if not path.is_file():
            raise SourceNotMarkovbot(path, "it is not a file")
        if path.stat().st_size == 0:
            raise SourceNotMarkovbot(path, "it is empty")
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            raise SourceUnreadable(path, str(exc)) from None
        snap = cls(path, conn)
        try:
            key_file = snap._check(key)
        except BaseException:
            conn.close()
            raise
        return snap, key_file

    def _check(self, key: bytes | None) -> Path | None:
        try:
            self.conn.execute("BEGIN")
            tables = {
                str(name) for (name,) in self.conn.execute(Q["table_names"])
            }  # the snapshot starts here
            application_id = int(self.conn.execute("PRAGMA application_id").fetchone()[0])
            version = int(self.conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.OperationalError as exc:  # locked, unreadable: not a verdict on the file
            raise SourceUnreadable(self.path, str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise SourceNotMarkovbot(self.path, f"it is not a SQLite database ({exc})") from None
        legacy = application_id == 0 and tables >= LEGACY_TABLES and version >= 1
        if application_id != APPLICATION_ID and not legacy:
            raise SourceNotMarkovbot(self.path, "it is another program's SQLite database")
        if version > SCHEMA_VERSION:
            raise SourceTooNew(self.path, version)
        meta = dict(self.conn.execute(Q["migrate_meta"]).fetchall())
        if version < SCHEMA_VERSION or keys.OLD_SALT_META in meta or keys.CHECK_META not in meta:
            raise SourceNeedsUpgrade(self.path, version)
        if learnlog.unapplied(self.path, int(meta.get(learnlog.APPLIED_META, 0))):
            raise SourceLogUnapplied(self.path)
        if learnlog.kept_changes(self.path):
            raise SourceChangesKept(self.path)
        if tables != SOURCE_TABLES:
            odd = ", ".join(sorted(tables ^ SOURCE_TABLES))
            raise SourceNotMarkovbot(self.path, f"its tables are not markovbot's ({odd})")
        try:
            keys.resolve(self.path, key, salt=None, check=str(meta[keys.CHECK_META]))
        except keys.KeyRefused as exc:
            raise SourceKeyRefused(str(exc)) from None
        return None if key is not None else keys.key_file(self.path)

    def row_counts(self) -> dict[str, int]:
        """Rows of each table copied."""
        counts = self.conn.execute(Q["migrate_row_counts"]).fetchone()
        return {name: int(n) for (name, _), n in zip(TABLES, counts, strict=True)}

    def next_ids(self) -> tuple[list[int], int, int]:
        """(next id of each of IDENTITY_TABLES, next window_changes value, removals counter)."""
        values = [int(v) for v in self.conn.execute(Q["migrate_next_ids"]).fetchone()]
        return values[:5], values[5], values[6]

    def table(
        self, name: str, convert: Callable[[Row], Row] | None, done: Callable[[int], None]
    ) -> tuple[list[str], Iterator[Row]]:
        """A table's columns (PostgreSQL's table has the same) and its rows, read CHUNK at a time."""
        cursor = self.conn.execute(Q[f"migrate_{name}"])
        columns = [str(d[0]) for d in cursor.description]

        def rows() -> Iterator[Row]:
            self.digest.update(name.encode())
            while chunk := cursor.fetchmany(CHUNK):
                # The digest of everything read: repr gives ints, text, bytes and None one text each,
                # the same however the rows are cut into chunks.
                self.digest.update(repr(chunk)[1:-1].encode() + b", ")
                yield from (map(convert, chunk) if convert else chunk)
                done(len(chunk))

        return columns, rows()

    def read_all(self) -> str:
        """Read every table without copying it: the digest the copy of this snapshot recorded."""
        for name, _ in TABLES:
            for _ in self.table(name, None, lambda n: None)[1]:
                pass
        return self.digest.hexdigest()

    def removals_and_consent(self, conn: sqlite3.Connection | None = None) -> tuple[object, ...]:
        """What a copy may not miss: the removals counter and the guild state, in the snapshot or now (conn)."""
        conn = conn or self.conn
        found: list[object] = [conn.execute(Q["migrate_removals"]).fetchone()[0]]
        for name in ("consent", "enabled_channels", "guild_settings"):
            found.append(sorted(conn.execute(Q[f"migrate_{name}"]).fetchall()))
        return tuple(found)

    def unchanged_since(self) -> bool:
        """True when the file, read now, has forgotten nothing and changed no consent since the snapshot.

        Learning since is no matter (the copy is the snapshot); a forget, an opt-out or a disabled
        channel that the copy missed would be undone by the bot on PostgreSQL.
        """
        now = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return self.removals_and_consent(now) == self.removals_and_consent()
        finally:
            now.close()

    def close(self) -> None:
        """End the read transaction."""
        self.conn.close()


async def migrate(
    source: Path, url: PostgresUrl, *, key: bytes | None = None, progress: Progress | None = None
) -> Outcome:
    """Copy the SQLite database at source into the PostgreSQL database at url (see the module's doc)."""
    started = time.monotonic()
    snap, key_file = Snapshot.open(source, key)
    try:
        outcome = Outcome(source, url, key_file)
        conn = await _connect(url)
        try:
            # One transaction, the schema's migration inside it (a savepoint of the same isolation):
            # a copy that fails leaves even an empty database without markovbot's tables.
            async with conn.transaction(isolation="read_committed"):
                await _prepare(conn, url)
                await _copy(conn, snap, outcome, progress or (lambda done, total: None))
        except (
            OSError,
            sqlite3.Error,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            ValueError,
            TypeError,
        ) as exc:
            # ValueError, TypeError: a value SQLite kept that PostgreSQL's column cannot take.
            raise CopyFailed(url, one_line(exc)) from exc
        finally:
            await conn.close()
    finally:
        snap.close()
    outcome.seconds = time.monotonic() - started
    return outcome


async def _connect(url: PostgresUrl) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url.dsn, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise TargetUnreachable(url, one_line(exc)) from exc


async def _prepare(conn: asyncpg.Connection, url: PostgresUrl) -> None:
    """Refuse another program's database or a newer markovbot's; give an empty one markovbot's schema."""
    version = await pg_schema.version(conn)
    if version > pg_schema.SCHEMA_VERSION:
        raise TargetTooNew(url, version)
    if version == 0 and (tables := int(await conn.fetchval(PQ["count_tables"]))):
        raise TargetNotMarkovbot(url, tables)
    try:
        await pg_schema.migrate(conn)
    except pg_schema.NotMarkovbotDatabase:  # another program made tables meanwhile
        raise TargetNotMarkovbot(url, int(await conn.fetchval(PQ["count_tables"]))) from None


async def _copy(conn: asyncpg.Connection, snap: Snapshot, outcome: Outcome, progress: Progress) -> None:
    """Inside the target's transaction: check it holds nothing (or this very copy), then copy everything."""
    await conn.execute(PQ["migrate_lock"])
    meta = {str(k): str(v) for k, v in await conn.fetch(PQ["migrate_meta"])}
    source_meta = dict(snap.conn.execute(Q["migrate_meta"]).fetchall())
    if COPIED_META in meta:
        record = json.loads(meta[COPIED_META])
        if snap.read_all() != record["digest"]:
            raise TargetOtherCopy(outcome.url, str(record["source"]), int(record["at"]))
        outcome.already, outcome.copied_at = True, int(record["at"])
        return
    filled = list(await conn.fetchval(PQ["migrate_tables_with_rows"]))
    if filled or set(meta) - {keys.CHECK_META}:
        raise TargetNotEmpty(outcome.url, filled or ["meta"])
    if meta and meta[keys.CHECK_META] != source_meta[keys.CHECK_META]:
        raise TargetOtherKey(outcome.url)
    await conn.execute(PQ["migrate_clear_meta"])
    counts = snap.row_counts()
    total = sum(counts.values())
    progress(0, total)
    for name, convert in TABLES:
        columns, rows = snap.table(name, convert, lambda n: progress(n, total))
        await conn.copy_records_to_table(name, records=rows, columns=columns)
        outcome.rows[name] = counts[name]
    next_ids, window_changes, removals = snap.next_ids()
    for table, next_id in zip(IDENTITY_TABLES, next_ids, strict=True):
        await conn.execute(PQ["migrate_restart_ids"], table, next_id)
    await conn.execute(PQ["migrate_restart_window_changes"], window_changes)
    await conn.execute(PQ["migrate_set_removals"], removals)
    if not snap.unchanged_since():  # checked last, the commit a moment away
        raise SourceChanged(snap.path)
    outcome.copied_at = int(time.time())
    record = {"source": str(snap.path.resolve()), "digest": snap.digest.hexdigest(), "at": outcome.copied_at}
    await conn.execute(PQ["migrate_put_meta"], COPIED_META, json.dumps(record))
