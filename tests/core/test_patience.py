"""A change the database refused waits its turn, and is kept so that a restart meanwhile does not lose it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core import learnlog, patience, schema
from bot.core.brain import Brain
from bot.core.deferred import Deferred, Kind, by_id
from bot.core.models import Message, UnlearnStatus
from bot.core.schema import DatabaseBusy, StoreError
from tests.core.dump import logical_dump
from tests.core.writer_corpus import KEY, learn, open_brain
from tests.lockholder import holding_the_database, holding_the_database_now

FIRST = Message("t", "g", "c1", "alice", "1", "the zebracorn sat on the mat")
SECOND = Message("t", "g", "c1", "bob", "2", "the dog sat on the log")
EDITED = Message("t", "g", "c1", "alice", "1", "the cat ran far away")
NEWCOMER = Message("t", "g", "c1", "carol", "3", "my very first words here")

# (the change, as the killed process makes it; what the database holds once it is made)
CHANGES = {
    "a delete after a restart": ("brain.delete('t', '1')", [SECOND]),
    "a delete with the text the front end had": ("brain.delete('t', '1', FIRST)", [SECOND]),
    "an unlearn with its text": ("brain.unlearn(FIRST)", [SECOND]),
    "an edit": ("brain.edit(FIRST, EDITED)", [SECOND, EDITED]),
    "a new member's first message": (
        "brain.learn(NEWCOMER, require_consent=False)",
        [FIRST, SECOND, NEWCOMER],
    ),
}

KILLED = """
import asyncio, logging, sys
from bot.core import schema
from bot.core.brain import Brain
from tests.core.test_patience import EDITED, FIRST, NEWCOMER
from tests.core.writer_corpus import KEY

schema.BUSY_TIMEOUT_MS = 100

async def main():
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s", force=True)
    brain = await Brain.open(sys.argv[1], key=KEY, walker="thread")
    print("open", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # until the database is held
    asyncio.create_task(eval(sys.argv[2]))
    await asyncio.Event().wait()  # until the SIGKILL

asyncio.run(main())
"""


async def consenting(brain: Brain) -> None:
    """The channel enabled, and each member of these tests opted in (an edit learns only theirs)."""
    await brain.set_channel("t", "g", "c1", True)
    for member in ("alice", "bob", "carol"):
        await brain.opt_in("t", "g", member)


async def learned_first_and_second(db: Path, tmp_path: Path) -> None:
    brain = await open_brain(db, tmp_path)
    try:
        await consenting(brain)
        await learn(brain, [FIRST, SECOND])
    finally:
        await brain.close()


async def assert_holds_what_learning_only(db: Path, tmp_path: Path, messages: list[Message]) -> None:
    """db's dump equals a database that learned only messages."""
    never = tmp_path / "never.sqlite3"
    reference = await open_brain(never, tmp_path)
    try:
        await consenting(reference)
        await learn(reference, messages)
    finally:
        await reference.close()
    assert logical_dump(db, KEY) == logical_dump(never, KEY)


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_waiting_its_turn_when_the_bot_is_killed_is_made_at_the_next_start(
    tmp_path: Path, change: str
) -> None:
    call, then = CHANGES[change]
    db = tmp_path / "killed.sqlite3"
    asyncio.run(learned_first_and_second(db, tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(db), call],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline() == "open\n"
        with holding_the_database_now(db):  # an import's transaction, say
            process.stdin.write("go\n")
            process.stdin.flush()
            line = process.stdout.readline()
            assert " waits: " in line and "locked" in line, line  # logged once the change is kept
            process.send_signal(signal.SIGKILL)
            process.wait()
    finally:
        process.kill()
        process.wait()
    with contextlib.closing(sqlite3.connect(learnlog.log_path(db))) as conn:
        (kept,) = conn.execute("SELECT count(*) FROM deferred").fetchone()
    assert kept == 1
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(f"{db.name}-learning"))
    for word in ("zebracorn", "cat ran", "carol"):  # the change's text and ids are sealed
        assert word.encode() not in on_disk

    async def restart() -> None:
        brain = await open_brain(db, tmp_path)
        try:
            assert await brain.catch_up() == 1
            await brain.flush()
        finally:
            await brain.close()

    asyncio.run(restart())
    asyncio.run(assert_holds_what_learning_only(db, tmp_path, then))
    with contextlib.closing(sqlite3.connect(learnlog.log_path(db))) as conn:
        assert conn.execute("SELECT count(*) FROM deferred").fetchone() == (0,)


async def test_a_delete_waiting_when_the_bot_closes_fails_at_once_and_is_made_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(patience, "BACKOFF_MIN", 3600.0)  # only the close ends its wait
    db = tmp_path / "closing.sqlite3"
    await learned_first_and_second(db, tmp_path)
    brain = await open_brain(db, tmp_path)
    async with holding_the_database(db):
        deleting = asyncio.create_task(brain.unlearn_id("t", "1"))
        while not any("unlearning message 1 waits" in r.getMessage() for r in caplog.records):
            assert not deleting.done(), deleting
            await asyncio.sleep(0.01)  # polled: the log line, not the pause, is what is waited for
        closing = asyncio.create_task(brain.close())
        with pytest.raises(
            DatabaseBusy, match=r"database is locked; kept, to be made once the database takes it$"
        ):
            await deleting
    await closing
    restarted = await open_brain(db, tmp_path)
    try:
        assert await restarted.catch_up() == 1
        assert not await restarted.is_learned("t", "1")
    finally:
        await restarted.close()
    await assert_holds_what_learning_only(db, tmp_path, [SECOND])


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, task: asyncio.Task[object]) -> None:
    """Until a record holding text is logged (task, meanwhile, must not end)."""
    while not any(text in r.getMessage() for r in caplog.records):
        assert not task.done(), task
        await asyncio.sleep(0.01)  # polled: the log line, not the pause, is what is waited for


async def test_changes_that_waited_in_vain_are_made_by_the_running_bot_once_the_database_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(patience, "PATIENCE", 0.0)
    monkeypatch.setattr(patience, "BACKOFF_MAX", 0.05)
    db = tmp_path / "busy.sqlite3"
    await learned_first_and_second(db, tmp_path)
    brain = await open_brain(db, tmp_path)
    try:
        async with holding_the_database(db):
            for message_id in ("1", "2"):
                with pytest.raises(StoreError, match=r"; kept, to be made once the database takes it$"):
                    await brain.unlearn_id("t", message_id)
            assert brain.catching_up is not None
            await wait_for_log(caplog, "kept changes wait for the database", brain.catching_up)
        assert await brain.catching_up == 2
        assert not await brain.is_learned("t", "1") and not await brain.is_learned("t", "2")
        assert await brain.store.deferred() == []
    finally:
        await brain.close()
    waited = [r.getMessage() for r in caplog.records if "kept changes wait" in r.getMessage()]
    assert len(waited) == 1 and "database is locked" in waited[0] and "kept," not in waited[0]
    await assert_holds_what_learning_only(db, tmp_path, [])


async def test_a_start_while_the_database_is_busy_keeps_what_it_could_not_make_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    db = tmp_path / "busy.sqlite3"
    await learned_first_and_second(db, tmp_path)
    earlier = await open_brain(db, tmp_path)
    try:
        for message_id in ("1", "2"):
            await earlier.store.defer(Deferred(Kind.DELETE, by_id("t", message_id)))
    finally:
        await earlier.close()
    brain = await open_brain(db, tmp_path)
    try:
        async with holding_the_database(db):
            catching_up = brain.catch_up()
            await wait_for_log(caplog, "unlearning message 1 waits", catching_up)
            await brain.close()  # a restart, say: what it holds is made at the next start
        assert catching_up.result() == 0
    finally:
        await brain.close()
    last = await open_brain(db, tmp_path)
    try:
        assert await last.catch_up() == 2
        assert not await last.is_learned("t", "1") and not await last.is_learned("t", "2")
    finally:
        await last.close()


async def test_a_kept_delete_of_a_message_older_than_the_edit_window_is_made_from_its_cached_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(patience, "PATIENCE", 0.0)
    db = tmp_path / "old.sqlite3"
    brain = await open_brain(db, tmp_path, edit_window_days=0)  # no recent rows: only the text unlearns
    try:
        await consenting(brain)
        await learn(brain, [FIRST, SECOND])
        async with holding_the_database(db):
            with pytest.raises(StoreError, match="kept"):
                await brain.delete("t", "1", FIRST)
            assert [change for _, change in await brain.store.deferred()] == [Deferred(Kind.DELETE, FIRST)]
            await brain.close()  # before the file is free: the next start is what makes it
    finally:
        await brain.close()
    restarted = await open_brain(db, tmp_path, edit_window_days=0)
    try:
        assert await restarted.delete("t", "2") is UnlearnStatus.NOT_KEPT  # by id alone: not this one
        assert await restarted.catch_up() == 1
        assert not await restarted.is_learned("t", "1")
        assert await restarted.is_learned("t", "2")
    finally:
        await restarted.close()


async def test_a_change_made_without_waiting_is_never_kept(tmp_path: Path) -> None:
    db = tmp_path / "free.sqlite3"
    await learned_first_and_second(db, tmp_path)
    brain = await open_brain(db, tmp_path)
    try:
        assert await brain.unlearn_id("t", "1") is UnlearnStatus.UNLEARNED
        assert await brain.store.deferred() == []
    finally:
        await brain.close()


async def test_a_change_kept_then_made_while_the_bot_runs_is_dropped_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(patience, "BACKOFF_MIN", 0.05)
    caplog.set_level(logging.INFO, logger="bot")
    db = tmp_path / "waited.sqlite3"
    await learned_first_and_second(db, tmp_path)
    brain = await open_brain(db, tmp_path)
    try:
        async with holding_the_database(db):
            deleting = asyncio.create_task(brain.unlearn_id("t", "1"))
            while not await brain.store.deferred():
                assert not deleting.done(), deleting
                await asyncio.sleep(0.01)  # polled: the kept change, not the pause, is what is waited for
            assert [change for _, change in await brain.store.deferred()] == [
                Deferred(Kind.DELETE, by_id("t", "1"))
            ]
        assert await deleting is UnlearnStatus.UNLEARNED
        assert await brain.store.deferred() == []
        assert any("unlearning message 1 went through" in r.getMessage() for r in caplog.records)
    finally:
        await brain.close()


async def test_a_forget_drops_the_members_kept_changes_and_no_one_elses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "forget.sqlite3"
    await learned_first_and_second(db, tmp_path)
    brain = await open_brain(db, tmp_path)
    try:
        kept = [
            Deferred(Kind.EDIT, EDITED, FIRST),  # alice's
            Deferred(Kind.LEARN, NEWCOMER),
            Deferred(Kind.DELETE, by_id("t", "2")),
            Deferred(Kind.UNLEARN, FIRST),  # alice's
        ]
        for change in kept:
            await brain.store.defer(change)
        with caplog.at_level(logging.INFO, logger="bot"):
            await brain.forget("t", "g", "alice")
        assert [change for _, change in await brain.store.deferred()] == kept[1:3]
        assert "dropped 2 changes kept for later" in caplog.text
        assert await brain.catch_up() == 2
        assert await brain.is_learned("t", "3") and not await brain.is_learned("t", "2")
        assert (await brain.member_info("t", "g", "alice")).messages == 0
    finally:
        await brain.close()
    on_disk = await asyncio.to_thread(
        lambda: b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    )
    assert b"zebracorn" not in on_disk


async def test_a_forget_while_the_members_edit_waits_drops_it_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(patience, "BACKOFF_MIN", 3600.0)  # asleep in its wait until the close
    db = tmp_path / "forget.sqlite3"
    await learned_first_and_second(db, tmp_path)
    brain = await open_brain(db, tmp_path)
    try:
        async with holding_the_database(db):
            editing = asyncio.create_task(brain.edit(FIRST, EDITED))
            await wait_for_log(caplog, "learning message 1 waits", editing)
            assert [change for _, change in await brain.store.deferred()] == [
                Deferred(Kind.EDIT, EDITED, FIRST)
            ]
        await brain.forget("t", "g", "alice")
        assert await brain.store.deferred() == []
        await brain.close()  # the edit, asleep in its wait, ends; nothing of it is kept again
        with pytest.raises(StoreError):
            await editing
    finally:
        await brain.close()
    restarted = await open_brain(db, tmp_path)
    try:
        assert await restarted.catch_up() == 0
        assert not await restarted.is_learned("t", "1")
        assert (await restarted.member_info("t", "g", "alice")).messages == 0
    finally:
        await restarted.close()
