"""The learning log: live batches committed to a sealed log of their own, applied to the database later."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import learnlog
from bot.core.brain import Brain
from bot.core.deferred import Deferred, Kind, by_id
from bot.core.learnqueue import LearningQueue
from bot.core.models import ChainInfo, Message, PendingMessage, UnlearnStatus
from bot.core.schema import StoreError
from tests.core.dump import logical_dump
from tests.core.writer_corpus import KEY, MEMBERS, corpus, learn, open_brain

texts = st.text(min_size=1, max_size=12)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
messages = st.builds(
    PendingMessage,
    platform=texts,
    message_id=texts,
    chain=st.builds(ChainInfo, st.integers(1, 2**31), st.integers(1, 3), st.integers(3, 32), st.just(2)),
    author_id=st.integers(1, 2**31),
    tokens=st.lists(texts, max_size=8).map(tuple),
    fingerprint=ints,
    normal=st.none() | ints,
    windows=st.lists(ints, max_size=8).map(tuple),
    chars=st.integers(0, 4000),
    bytes=st.integers(0, 16000),
    keep=st.booleans(),
)


@given(st.lists(messages, max_size=5))
@settings(max_examples=200, deadline=None)
def test_a_batch_reads_back_from_its_entry_exactly_as_it_was(batch: list[PendingMessage]) -> None:
    assert learnlog.decode(learnlog.encode(batch)) == batch


@given(st.lists(messages, max_size=5))
@settings(max_examples=100, deadline=None)
def test_an_entry_is_one_json_array_of_the_batch_as_before(batch: list[PendingMessage]) -> None:
    """Encoded a message at a time, an entry is still the bytes one json.dumps of the batch makes
    (logs left by an earlier version replay here, and this one's there)."""
    entry = learnlog.encode(batch)
    array = json.loads(entry.decode("utf-8", "surrogatepass"))
    whole = json.dumps(array, ensure_ascii=False, separators=(",", ":"))
    assert entry == whole.encode("utf-8", "surrogatepass")
    assert len(array) == len(batch)


def pending(text: str, n: int) -> PendingMessage:
    """A queued message of a word-per-token text, as a learning log entry holds one."""
    return PendingMessage(
        "t", f"m{n}", ChainInfo(1, 2, 8), 1, tuple(text.split()), n, None, (n,), len(text), len(text)
    )


async def test_the_log_file_holds_no_text_and_opens_only_with_its_database_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "markov.sqlite3-learning"
    log_ = learnlog.LearningLog(path, KEY)
    assert await log_.open(0) == []
    batch = [pending("zebracorn sings quietly", 1), pending("another xylograph line", 2)]
    assert await log_.append(batch) == 1
    await log_.close()
    on_disk = await asyncio.to_thread(lambda: b"".join(p.read_bytes() for p in tmp_path.iterdir()))
    for word in ("zebracorn", "quietly", "xylograph"):
        assert word.encode() not in on_disk

    reopened = learnlog.LearningLog(path, KEY)
    assert await reopened.open(0) == [(1, batch)]
    await reopened.close()
    foreign = learnlog.LearningLog(path, bytes(32))
    with caplog.at_level(logging.WARNING):
        assert await foreign.open(0) == []
    await foreign.close()
    assert "does not open with this database's key: skipped" in caplog.text


async def test_entries_the_database_applied_are_dropped_and_new_ones_number_after_them(
    tmp_path: Path,
) -> None:
    log_ = learnlog.LearningLog(tmp_path / "log", KEY)
    await log_.open(0)
    for n in range(3):
        await log_.append([pending(f"word{n}", n)])
    await log_.close()
    again = learnlog.LearningLog(tmp_path / "log", KEY)
    assert [seq for seq, _ in await again.open(applied=2) or []] == [3]
    assert await again.append([pending("later", 9)]) == 4
    await again.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "log")) as conn:
        assert [seq for (seq,) in conn.execute("SELECT seq FROM entries")] == [3, 4]


async def test_a_deferred_change_is_kept_sealed_across_opens_until_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "markov.sqlite3"
    path = learnlog.log_path(db)
    change = Deferred(Kind.EDIT, Message("t", "g", "c", "zoe", "m1", "quixotic zebracorn"), None)
    log_ = learnlog.LearningLog(path, KEY)
    await log_.open(0)
    assert await log_.defer(change) == 1
    assert await log_.defer(Deferred(Kind.DELETE, by_id("t", "m2"))) == 2
    await log_.close()
    on_disk = await asyncio.to_thread(lambda: b"".join(p.read_bytes() for p in tmp_path.iterdir()))
    assert b"zebracorn" not in on_disk and b"zoe" not in on_disk
    assert learnlog.kept_changes(db) == 2  # what a migration to PostgreSQL must not leave behind
    assert learnlog.unapplied(db, 0) == 0

    again = learnlog.LearningLog(path, KEY)
    assert await again.open(0) == []  # no batch
    assert [number for number, _ in await again.deferred()] == [1, 2]
    assert (await again.deferred())[0] == (1, change)
    await again.done(1)
    assert [number for number, _ in await again.deferred()] == [2]
    await again.close()
    assert learnlog.kept_changes(db) == 1
    foreign = learnlog.LearningLog(path, bytes(32))
    await foreign.open(0)
    with caplog.at_level(logging.WARNING):
        assert await foreign.deferred() == []
    await foreign.close()
    assert "deferred change 2 does not open with this database's key: skipped" in caplog.text


async def test_a_kept_change_s_number_is_never_given_to_another_while_the_log_is_open(tmp_path: Path) -> None:
    log_ = learnlog.LearningLog(tmp_path / "log", KEY)
    await log_.open(0)
    try:
        assert await log_.defer(Deferred(Kind.DELETE, by_id("t", "m1"))) == 1
        assert await log_.defer(Deferred(Kind.DELETE, by_id("t", "m2"))) == 2
        await log_.done(2)  # dropped while a change being made may still hold 2
        assert await log_.defer(Deferred(Kind.DELETE, by_id("t", "m3"))) == 3
        assert [number for number, _ in await log_.deferred()] == [1, 3]
    finally:
        await log_.close()


async def test_a_log_of_the_format_before_gets_its_deferred_changes_table_and_keeps_its_batches(
    tmp_path: Path,
) -> None:
    path = tmp_path / "markov.sqlite3-learning"
    old = learnlog.LearningLog(path, KEY)
    await old.open(0)
    batch = [pending("an old batch", 1)]
    await old.append(batch)
    await old.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # as markovbot wrote it before deferred changes
        conn.executescript("DROP TABLE deferred; PRAGMA user_version = 1")
    assert learnlog.unapplied(tmp_path / "markov.sqlite3", 0) == 1
    assert learnlog.kept_changes(tmp_path / "markov.sqlite3") == 0
    log_ = learnlog.LearningLog(path, KEY)
    assert await log_.open(0) == [(1, batch)]
    assert await log_.deferred() == []
    await log_.close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (learnlog.FORMAT,)
        assert conn.execute("SELECT count(*) FROM deferred").fetchone() == (0,)


async def test_a_learning_log_that_is_not_one_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "markov.sqlite3"
    await (await open_brain(db, tmp_path)).close()
    learnlog.log_path(db).write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"learning log .* cannot be used .*: move it away"):
        await open_brain(db, tmp_path)


@pytest.mark.parametrize(
    ("made", "refused"),
    [
        (
            "CREATE TABLE entries (seq INTEGER PRIMARY KEY, sealed BLOB NOT NULL); "
            f"PRAGMA user_version = {learnlog.FORMAT + 1}",
            rf"learning log .* was written by a newer markovbot \(format {learnlog.FORMAT + 1}, this one "
            rf"reads {learnlog.FORMAT}\), left untouched",
        ),
        (
            "CREATE TABLE notes (body TEXT)",
            r"learning log .* is another program's SQLite database, left untouched",
        ),
    ],
    ids=["newer-format", "another-programs-database"],
)
async def test_a_log_file_of_a_newer_format_or_of_another_program_is_refused_and_left_as_it_was(
    tmp_path: Path, made: str, refused: str
) -> None:
    db = tmp_path / "markov.sqlite3"
    await (await open_brain(db, tmp_path)).close()
    path = learnlog.log_path(db)
    path.unlink()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(made)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=refused):
        await open_brain(db, tmp_path)
    assert path.read_bytes() == before
    assert [name for name in os.listdir(tmp_path) if name.startswith(path.name)] == [path.name]


async def assert_as_learned_directly(db: Path, tmp_path: Path, messages: list[Message]) -> None:
    """db dumps equal to a database that learned messages with no learning log (each batch committed)."""
    clean = tmp_path / "clean.sqlite3"
    reference = await open_brain(clean, tmp_path, learning_log=False)
    try:
        assert not reference.store.logs_learning
        await learn(reference, messages)
    finally:
        await reference.close()
    assert logical_dump(db, KEY) == logical_dump(clean, KEY)


async def logged(brain: Brain, n: int) -> None:
    """Wait until the flusher has committed n messages (to the log, here); 10 s at most."""
    deadline = time.monotonic() + 10
    while brain.store.saved < n:
        assert time.monotonic() < deadline, f"{brain.store.saved} of {n} messages committed in 10 s"
        await asyncio.sleep(0.01)


@pytest.fixture
def stalled_applier(monkeypatch: pytest.MonkeyPatch) -> None:
    """The applier never runs on its own: what the flusher logs stays unapplied until a flush."""

    async def idle(self: LearningQueue) -> None:
        return None

    monkeypatch.setattr(LearningQueue, "_apply_loop", idle)


@pytest.mark.usefixtures("stalled_applier")
async def test_a_logged_message_is_pending_until_applied_then_unlearned_and_forgotten_exactly(
    tmp_path: Path,
) -> None:
    items = corpus(120)
    db = tmp_path / "log.sqlite3"
    brain = await open_brain(db, tmp_path, flush_interval=0.02, batch_size=25)
    try:
        assert brain.store.logs_learning
        for message in items:
            await brain.learn(message, require_consent=False)
        await logged(brain, len(items))
        assert brain.store.committed == 0 and brain.store.pending == len(items)
        assert await brain.is_learned("t", items[5].id)  # pending counts as learned for dedupe
        assert await brain.unlearn_id("t", items[5].id) is UnlearnStatus.UNLEARNED  # after applying the log
        await brain.forget("t", "g", MEMBERS[0])
        assert brain.store.committed == len(items) and brain.store.pending == 0
    finally:
        await brain.close()
    kept = [m for i, m in enumerate(items) if i != 5 and m.author != MEMBERS[0]]
    await assert_as_learned_directly(db, tmp_path, kept)


async def test_a_second_process_on_the_file_commits_directly_and_both_learn_everything(
    tmp_path: Path,
) -> None:
    items = corpus(200)
    db = tmp_path / "shared.sqlite3"
    first = await open_brain(db, tmp_path, flush_interval=0.02, batch_size=20)
    second = await open_brain(db, tmp_path, flush_interval=0.02, batch_size=20)
    try:
        assert first.store.logs_learning and not second.store.logs_learning
        for i, message in enumerate(items):
            await (first if i % 2 else second).learn(message, require_consent=False)
        await first.flush()
        await second.flush()
    finally:
        await first.close()
        await second.close()
    await assert_as_learned_directly(db, tmp_path, items)


KILLED = """
import asyncio, os, sys, time
from bot.core import learnlog, learnqueue
from bot.core.brain import Brain
from bot.core.deferred import Deferred, Kind, by_id
from bot.core.learnqueue import LearningQueue
from tests.core.writer_corpus import KEY, corpus

async def stall(*args, **kwargs):
    await asyncio.Event().wait()  # until the SIGKILL

async def until(done):
    deadline = time.monotonic() + 10
    while not done():
        if time.monotonic() > deadline:
            print("not reached in 10 s", flush=True)
            os._exit(1)
        await asyncio.sleep(0.01)

async def main():
    db, where, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    LearningQueue._apply_loop = stall  # what is logged waits for a flush
    brain = await Brain.open(db, key=KEY, walker="thread", flush_interval=0.02, batch_size=30)
    for message in corpus(n):
        await brain.learn(message, require_consent=False)
    await until(lambda: brain.store.saved >= n)
    if not where.startswith("before the apply"):  # the database applies every entry at once; the log never drops them
        learnqueue.APPLY_ENTRIES = n
        learnlog.LearningLog.drop = stall
        asyncio.create_task(brain.flush())
        await until(lambda: brain.store.committed >= n)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def on_log(db: Path, statement: str) -> int:
    """A statement's one value on the learning log of a database (then let go: the log is taken exclusively)."""
    with contextlib.closing(sqlite3.connect(learnlog.log_path(db))) as conn:
        return int(conn.execute(statement).fetchone()[0])


@pytest.mark.parametrize(
    "where",
    [
        "before the apply",
        "before the apply, by a markovbot whose logs had no format",
        "before the log drops what was applied",
    ],
)
def test_a_sigkill_loses_no_logged_batch_and_the_next_open_learns_each_once(
    tmp_path: Path, where: str
) -> None:
    n = 300
    db = tmp_path / "killed.sqlite3"
    script = tmp_path / "killed.py"
    script.write_text(KILLED, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), str(db), where, str(n)],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == b"ready\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with contextlib.closing(sqlite3.connect(db)) as conn:
        learned = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    unapplied = where.startswith("before the apply")
    assert learned == (0 if unapplied else n)
    assert on_log(db, "SELECT count(*) FROM entries") >= -(-n // 30)
    if where.endswith("no format"):  # the log as 9d78774 wrote it
        with contextlib.closing(sqlite3.connect(learnlog.log_path(db))) as conn:
            conn.execute("PRAGMA user_version = 0")

    async def reopen_and_compare() -> None:
        brain = await open_brain(db, tmp_path)
        try:
            assert brain.store.logs_learning
            await brain.flush()
            assert brain.store.committed == (n if unapplied else 0)
        finally:
            await brain.close()
        await assert_as_learned_directly(db, tmp_path, corpus(n))

    asyncio.run(reopen_and_compare())
    assert on_log(db, "SELECT count(*) FROM entries") == 0
    assert on_log(db, "PRAGMA user_version") == learnlog.FORMAT
