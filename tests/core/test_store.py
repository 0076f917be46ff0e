"""The Store: migrations, the batched writer, backpressure and caches.

The writer's contract (flushing, backpressure, close) runs on both engines (`where`,
tests/core/conftest.py); the rest is about SQLite itself, each group says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.core.brain import Brain
from bot.core.learnqueue import LearningQueue
from bot.core.models import Message
from bot.core.sql import Q
from bot.core.store import (
    APPLICATION_ID,
    LRU,
    SCHEMA_VERSION,
    NotMarkovbotDatabase,
    SchemaTooNew,
    Store,
    migrations,
)
from tests.core.enginebrains import rows_of

# SQLite's file: its migrations (PRAGMA user_version, application_id, WAL) and the refusal of
# files that are not markovbot's, byte for byte. PostgreSQL's: tests/core/test_postgres_schema.py.


def schema(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()


async def test_migrations_applied_twice_are_a_no_op(db_path: Path) -> None:
    async with Store(db_path):
        pass
    first = schema(db_path)
    async with Store(db_path) as store:
        key = store.key
    async with Store(db_path) as store:
        assert store.key == key
    assert schema(db_path) == first
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_newer_schema_is_refused_and_left_untouched(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew, match="upgrade markovbot"):
        await Store(db_path).open()
    assert schema(db_path) == []


def make_newer(path: Path) -> None:
    async def make() -> None:
        async with Store(path):
            pass

    asyncio.run(make())
    with contextlib.closing(sqlite3.connect(path)) as db:  # closed now: its checkpoint is done before
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def make_newer_empty(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:  # a rollback journal: WAL would change its header
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def make_foreign(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.execute("INSERT INTO notes (body) VALUES ('keep me')")


def make_junk(path: Path) -> None:
    path.write_bytes(b"\x00junk" * 1000)


@pytest.mark.parametrize(
    ("make", "refusal", "message"),
    [
        (make_newer, SchemaTooNew, "upgrade markovbot"),
        (make_newer_empty, SchemaTooNew, "upgrade markovbot"),
        (make_foreign, NotMarkovbotDatabase, "another program's SQLite database"),
        (make_junk, NotMarkovbotDatabase, "not a SQLite database"),
    ],
)
def test_a_refused_file_is_left_byte_for_byte_and_the_cli_says_why_in_one_line(
    tmp_path: Path, make: Any, refusal: type[Exception], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "refused.sqlite3"
    make(path)
    before, files = path.read_bytes(), sorted(p.name for p in tmp_path.iterdir())

    async def open_it() -> None:
        async with Store(path):
            pass

    with pytest.raises(refusal, match=message):
        asyncio.run(open_it())
    assert main(["--db", str(path), "stats", "--chain", "c"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # no -wal, -shm or -journal left


MIGRATING = """
import sqlite3, sys
from bot.core.schema import APPLICATION_ID, MIGRATION_FUNCTIONS, migrations

db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA wal_autocheckpoint = 0")  # the log is emptied into the file only when told
for name, arity, function in MIGRATION_FUNCTIONS:
    db.create_function(name, arity, function, deterministic=True)
for number, sql in migrations()[2:]:
    db.executescript(f"BEGIN;\\n{sql}\\nPRAGMA user_version = {number};\\nCOMMIT;")
db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
print("migrated", flush=True)
sys.stdin.readline()
"""


def write_first_page_from_the_wal(path: Path) -> None:
    """Write the -wal's newest copy of page 1 into the file: a checkpoint's first write."""
    wal = Path(f"{path}-wal").read_bytes()
    page_size = int.from_bytes(wal[8:12], "big")  # after the log's magic number and version
    frame = 24 + page_size  # a frame: its header (the page's number first), then the page
    copies = [at + 24 for at in range(32, len(wal) - frame + 1, frame) if wal[at : at + 4] == b"\0\0\0\1"]
    with path.open("r+b") as f:
        f.write(wal[copies[-1] : copies[-1] + page_size])


def read_immutable(path: Path) -> None:
    """Read a database's schema from its file alone (no lock, no log)."""
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)) as db:
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()


async def test_a_database_another_process_is_checkpointing_opens_and_is_not_called_foreign(
    db_path: Path,
) -> None:
    # While a checkpoint copies the -wal into the file (a new file's first open, a forget's scrub),
    # the file alone is torn: page 1 new, the pages it points to not yet written. Read as immutable,
    # it was "not a SQLite database", and a second process starting then (a shard) refused it.
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        for number, sql in migrations()[:2]:
            db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    holder = await asyncio.create_subprocess_exec(  # migrates the rest, all of it in the -wal
        sys.executable, "-c", MIGRATING, str(db_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert (await holder.stdout.readline()).strip() == b"migrated"
        write_first_page_from_the_wal(db_path)
        with pytest.raises(sqlite3.DatabaseError, match="malformed"):  # the file alone, as immutable
            read_immutable(db_path)
        async with Store(db_path, key=bytes(16), walker="thread") as store:
            assert store.key == bytes(16)
    finally:
        holder.stdin.write(b"\n")
        await holder.stdin.drain()
        assert await holder.wait() == 0
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_a_markovbot_database_made_before_application_ids_is_recognised(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        for number, sql in migrations()[:2]:
            db.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        db.execute("INSERT INTO tokens (id, text, refs) VALUES (7, 'old', 1)")
    async with Store(db_path):
        pass
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("SELECT value FROM counters WHERE name = 'next_token_id'").fetchone() == (8,)


# Every row with its ids, read through SQLite's table_info, equal under any hash seed: SQLite only
# (PostgreSQL's ids come from sequences several writers share; its dumps are compared id-free).

DETERMINISM = """
import asyncio, sys
from pathlib import Path
from bot.core.brain import Brain
from bot.core.models import ChainKey
from bot.importer import import_file


async def main() -> None:
    brain = await Brain.open(sys.argv[1], key=bytes(16), hub_rows=5, batch_size=int(sys.argv[3]))
    try:
        await import_file(brain, Path(sys.argv[2]), ChainKey("local", "local", "c"), progress=False)
    finally:
        await brain.close()


asyncio.run(main())
"""


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but meta (which holds the key check), ids included; not the times learned."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        found = {}
        for (table,) in db.execute(Q["table_names"]):
            if table != "meta":
                names = [c[1] for c in db.execute(f"PRAGMA table_info({table})") if c[1] != "learned_at"]
                columns = ", ".join(names)
                order = ", ".join(str(i) for i in range(1, len(names) + 1))
                found[table] = db.execute(f"SELECT {columns} FROM {table} ORDER BY {order}").fetchall()
        return found


def test_token_ids_and_every_row_are_the_same_under_any_hash_seed(tmp_path: Path) -> None:
    source = tmp_path / "corpus.txt"
    words = [f"word{i}" for i in range(300)]
    lines = [" ".join(words[(i * 11 + j * 17) % 300] for j in range(3 + i % 7)) for i in range(1500)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = tmp_path / "learn.py"
    script.write_text(DETERMINISM, encoding="utf-8")
    dumps = []
    for seed, batch in (("1", 200), ("2", 200), ("3", 7)):
        db = tmp_path / f"seed{seed}.sqlite3"
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, str(script), str(db), str(source), str(batch)], env=env, check=True)
        dumps.append(rows(db))
    assert dumps[0]["hubs"] and len(dumps[0]["tokens"]) == 300
    assert dumps[0] == dumps[1]
    assert dumps[2]["tokens"] == dumps[0]["tokens"]  # batch boundaries do not change token ids either


async def learn(brain: Brain, n: int, channel: str = "c") -> None:
    await brain.opt_in("t", "g", "a")
    await brain.set_channel("t", "g", channel, True)
    for i in range(n):
        await brain.learn(Message("t", "g", channel, "a", f"{channel}{i}", f"message number {i} here"))


def open_options(where: Path | str, tmp_path: Path) -> dict[str, Any]:
    """The options a Brain over where needs: PostgreSQL's key file in tmp_path."""
    return {} if isinstance(where, Path) else {"key_path": tmp_path / "pg"}


async def test_the_flusher_commits_within_the_interval_without_being_asked(
    where: Path | str, tmp_path: Path
) -> None:
    brain = await Brain.open(where, flush_interval=0.05, **open_options(where, tmp_path))
    try:
        await learn(brain, 10)
        for _ in range(100):
            if brain.store.pending == 0:
                break
            await asyncio.sleep(0.02)
        assert brain.store.pending == 0
        assert brain.store.committed == 10
    finally:
        await brain.close()


async def test_a_flush_that_takes_part_of_the_interval_does_not_push_the_next_one_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interval counts from a flush's start: flushes taking 0.25 s of a 0.4 s interval begin
    0.4 s apart, not 0.65 (a commit every interval under load, not every interval and a commit)."""
    starts: list[float] = []
    six = asyncio.Event()
    logged = LearningQueue._log_batches  # what the flusher does each interval, with the learning log

    async def slow(self: LearningQueue) -> None:
        starts.append(time.monotonic())
        if len(starts) == 6:
            six.set()
        await logged(self)
        await asyncio.sleep(0.25)  # the flush's own time, as a slow disk's commit would take

    monkeypatch.setattr(LearningQueue, "_log_batches", slow)
    brain = await Brain.open(tmp_path / "m.sqlite3", flush_interval=0.4)
    try:
        assert brain.store.logs_learning
        await asyncio.wait_for(six.wait(), timeout=30)
    finally:
        await brain.close()
    gaps = [b - a for a, b in itertools.pairwise(starts[:6])]
    assert sum(gaps) / len(gaps) < 0.525, gaps


async def test_a_full_queue_makes_learning_wait_rather_than_grow(where: Path | str, tmp_path: Path) -> None:
    brain = await Brain.open(
        where, flush_interval=1.0, batch_size=5, max_pending=8, **open_options(where, tmp_path)
    )
    seen: list[int] = []
    try:
        original = brain.store.enqueue

        async def watched(item: object) -> bool:
            result = await original(item)  # type: ignore[arg-type]
            seen.append(brain.store.pending)
            return result

        brain.store.enqueue = watched  # type: ignore[method-assign]
        await learn(brain, 50)
        await brain.flush()
        assert max(seen) <= 8
        assert brain.store.committed == 50
    finally:
        await brain.close()


async def test_close_flushes_what_is_pending(where: Path | str, tmp_path: Path) -> None:
    brain = await Brain.open(where, flush_interval=1.0, **open_options(where, tmp_path))
    await learn(brain, 7)
    await brain.close()
    assert await rows_of(where, "SELECT count(*) FROM messages") == [(7,)]


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and len(cache) == 2


# SQLite's library (its memory statistics) and its query planner (EXPLAIN QUERY PLAN): SQLite only.

MEMORY_PROBE = """
import ctypes, sqlite3, sys, _sqlite3
from bot.core.sql import tune_sqlite
lib = ctypes.CDLL(_sqlite3.__file__)
lib.sqlite3_memory_used.restype = ctypes.c_int64
early = sqlite3.connect(":memory:") if sys.argv[1] == "open-first" else None
applied = tune_sqlite()
conn = sqlite3.connect(":memory:")
conn.execute("CREATE TABLE t (x)")
print(applied, lib.sqlite3_memory_used() > 0, conn.execute("SELECT count(*) FROM t").fetchone()[0])
"""


@pytest.mark.parametrize(("case", "expected"), [("fresh", "True False 0"), ("open-first", "False True 0")])
def test_sqlite_memory_statistics_go_off_only_while_no_connection_is_open(case: str, expected: str) -> None:
    # Off, every connection's allocations stop queueing on one process-wide mutex; with a
    # connection already open, shutting SQLite down to change it would be unsafe, so nothing changes.
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, case], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == expected.split()


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("message_fingerprint_exists", (1, 5)),
        ("message_multiplicity", (1, "[5, 6]")),
        ("windows_present", (1, "[5, 6]")),
        ("known_message_keys", ("[1, 2]",)),
        ("message_by_key", (1,)),
        ("recent_message", (1,)),
        ("successors_read", (1, b"\x00", b"\xff", b"\x00" * 8)),
        ("predecessors_read", (1, b"\x00", b"\xff", 5, b"\x00" * 4, b"\xff" * 8)),
    ],
)
async def test_the_guard_and_the_reports_lookups_read_through_an_index(
    db_path: Path, name: str, params: tuple[Any, ...]
) -> None:
    async with Store(db_path, walker="thread"):
        pass
    with contextlib.closing(sqlite3.connect(db_path)) as db:
        plan = " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {Q[name]}", params))
    assert "SEARCH" in plan and "SCAN messages" not in plan and "SCAN windows" not in plan, plan
    assert "(chain_id=?)" not in plan, plan  # an index searched by chain alone reads the whole chain


@pytest.mark.parametrize("learning_log", [True, False], ids=["log", "direct"])
@pytest.mark.parametrize("operation", ["flush", "forget"])
async def test_a_flush_or_a_forget_ends_while_messages_keep_coming(
    operation: str, learning_log: bool, tmp_path: Path
) -> None:
    """A flush learns what was queued when it was called and returns, though a flood keeps queueing
    faster than batches commit (an unlearn or a reset flushes first); a forget ends too."""
    path = tmp_path / "m.sqlite3"
    brain = await Brain.open(
        path, flush_interval=0.05, batch_size=5, max_pending=1_000, learning_log=learning_log
    )
    for member in ("a", "b"):
        await brain.opt_in("t", "g", member)
    await brain.set_channel("t", "g", "c", True)
    for i in range(30):
        await brain.learn(Message("t", "g", "c", "b", f"b{i}", f"words of b number {i}"))
    await brain.flush()
    queued = 0
    stop = False
    backlog = asyncio.Event()

    async def flood() -> None:
        nonlocal queued
        while not stop:
            await brain.learn(Message("t", "g", "c", "a", f"a{queued}", f"message number {queued} here"))
            queued += 1
            if queued == 1_000:
                backlog.set()
            await asyncio.sleep(0)  # one message a loop turn, as a gateway's events come

    task = asyncio.create_task(flood())
    try:
        await backlog.wait()
        before = queued
        if operation == "forget":
            forgot = await asyncio.wait_for(brain.forget("t", "g", "b"), timeout=60)
            assert forgot.messages == 30
        else:
            await asyncio.wait_for(brain.flush(), timeout=60)
            assert (await rows_of(path, "SELECT count(*) FROM messages"))[0][0] >= 30 + before
    finally:
        stop = True
        await task
        await brain.close()
    kept = 0 if operation == "forget" else 30
    assert await rows_of(path, "SELECT count(*) FROM messages") == [(queued + kept,)]
