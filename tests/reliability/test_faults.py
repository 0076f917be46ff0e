"""Faults: a full disk pauses learning without losing or corrupting anything; bad paths fail clearly."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.core import patience, schema
from bot.core.brain import Brain
from bot.core.models import ChainKey, Message, UnlearnStatus
from bot.core.schema import StoreError
from bot.core.store import SchemaTooNew
from tests.core.dump import hub_count, hub_errors, logical_dump
from tests.lockholder import holding_the_database

SALT = bytes(range(16))  # the fingerprint key of every database here


FULL_DISK_WRITER = """
import asyncio, logging, os, resource, signal, sys
from bot.core.brain import Brain
from bot.core.models import Message

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead


async def main() -> None:
    db, corpus, salt, hub_rows = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4])
    in_background = sys.argv[5] == "background"  # a running bot's: the log applied by a learning process
    lines = open(corpus, encoding="utf-8").read().splitlines()
    brain = await Brain.open(
        db, key=salt, hub_rows=hub_rows, flush_interval=0.05, batch_size=100, max_pending=len(lines),
        in_background=in_background, walker="process" if in_background else "thread",
    )
    writers = [0] if brain.store.learning_pid is None else [0, brain.store.learning_pid]
    await brain.opt_in("t", "g", "u")
    await brain.set_channel("t", "g", "c", True)
    for n, line in enumerate(lines[:1000]):  # learned (through the learning log) before the disk fills
        await brain.learn(Message("t", "g", "c", "u", str(n), line))
    await brain.flush()
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    grown = max(os.path.getsize(db + suffix) for suffix in ("", "-wal", "-shm"))
    for pid in writers:  # room for a few batches, in each process that writes
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (grown + 300_000, hard))
    for n, line in enumerate(lines[1000:], start=1000):
        await brain.learn(Message("t", "g", "c", "u", str(n), line))
    loop = asyncio.get_running_loop()
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command == "status":
            print(brain.store.pending, brain.store.committed, flush=True)
        elif command == "space":
            for pid in writers:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
            await brain.close()
            print(brain.store.committed, brain.store.duplicates, flush=True)
            return


if __name__ == "__main__":  # the learning process imports this script too
    asyncio.run(main())
"""
HUB_ROWS = 20  # so that the corpus makes hubs, whose cached arrays a failed transaction must not keep


def full_disk_corpus(path: Path) -> list[str]:
    """New words on every line (a failed batch creates tokens) and a few wide contexts (hubs)."""
    lines = [f"the common w{i} x{i % 40} y{(i * 7) % 300} then z{i} and q{i * 31 % 997}" for i in range(2500)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


@pytest.mark.parametrize("learning", ["here", "background"])
def test_a_real_full_disk_pauses_learning_and_the_resumed_database_equals_a_clean_import(
    tmp_path: Path, learning: str
) -> None:
    source, db, clean = tmp_path / "corpus.txt", tmp_path / "full.sqlite3", tmp_path / "clean.sqlite3"
    lines = full_disk_corpus(source)
    script = tmp_path / "writer.py"
    script.write_text(FULL_DISK_WRITER, encoding="utf-8")
    writer = subprocess.Popen(
        [sys.executable, str(script), str(db), str(source), SALT.hex(), str(HUB_ROWS), learning],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None and writer.stdout is not None and writer.stderr is not None
    try:
        log = []
        while not any("learning paused" in line for line in log):  # the writer's own log says so
            line = writer.stderr.readline()
            assert line, "the writer ended without pausing:\n" + "".join(log)
            log.append(line)
        assert "disk full" in log[-1], log[-1]
        writer.stdin.write("status\n")
        writer.stdin.flush()
        pending, committed = (int(v) for v in writer.stdout.readline().split())
        assert pending > 0 and committed > 0, "the limit should fall in the middle of the corpus"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] <= len(lines) - pending

        writer.stdin.write("space\n")  # space again: the writer raises its limit and finishes
        writer.stdin.flush()
        learned, duplicates = (int(v) for v in writer.stdout.readline().split())
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    finally:
        writer.kill()
        writer.wait()
    assert (learned, duplicates) == (len(lines), 0)

    async def clean_import() -> None:
        brain = await Brain.open(clean, key=SALT, hub_rows=HUB_ROWS, batch_size=100)
        try:
            await brain.opt_in("t", "g", "u")
            await brain.set_channel("t", "g", "c", True)
            for n, line in enumerate(lines):
                await brain.learn(Message("t", "g", "c", "u", str(n), line))
        finally:
            await brain.close()

    asyncio.run(clean_import())
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert hub_count(db) > 0 and hub_errors(db) == []
    assert logical_dump(db, SALT) == logical_dump(clean, SALT)


FULL_DISK_CONSENT = """
import asyncio, os, resource, signal, sys
from bot.core.brain import Brain
from bot.core.schema import StoreError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead


async def main() -> None:
    db = sys.argv[1]
    brain = await Brain.open(db, key=bytes.fromhex(sys.argv[2]), walker="thread")
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    grown = max(os.path.getsize(db + suffix) for suffix in ("", "-wal", "-shm"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (grown, hard))  # no file may grow any more
    opted = 0
    try:
        while opted < 100_000:
            await brain.opt_in("t", "g", f"member {opted}")
            opted += 1
        print("never full", flush=True)
    except StoreError as exc:
        print(type(exc).__name__, opted, flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    await brain.close()


asyncio.run(main())
"""


async def test_a_change_on_a_real_full_disk_fails_as_disk_full_and_changes_nothing(
    tmp_path: Path, db_path: Path
) -> None:
    script = tmp_path / "consent.py"
    script.write_text(FULL_DISK_CONSENT, encoding="utf-8")
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(db_path),
        SALT.hex(),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await writer.communicate()
    assert writer.returncode == 0, err.decode()
    kind, opted = out.decode().split()
    assert kind == "DiskFull" and int(opted) > 0, out.decode()
    brain = await Brain.open(db_path, key=SALT, walker="thread")
    try:  # every opt-in that said so is there, and the one that failed is not
        assert await brain.is_opted_in("t", "g", f"member {int(opted) - 1}")
        assert not await brain.is_opted_in("t", "g", f"member {opted}")
    finally:
        await brain.close()


async def test_a_newer_schema_is_refused_by_the_brain(db_path: Path) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 42")
    with pytest.raises(SchemaTooNew, match="schema version 42"):
        await Brain.open(db_path)


def test_a_database_path_that_cannot_exist_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["--db", str(blocker / "markov.sqlite3"), "stats", "--chain", "c"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: cannot use the database") and "\n" not in err


def test_a_database_that_is_not_sqlite_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "junk.sqlite3"
    db.write_bytes(b"\x00junk" * 1000)
    assert main(["--db", str(db), "generate", "--chain", "c"]) == 1
    assert "cannot use the database" in capsys.readouterr().err


def limited_import(db: Path, source: Path, limit: int | None) -> subprocess.CompletedProcess[str]:
    """`markovbot import` in a process whose files may not grow past limit bytes (None: no limit)."""

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {
        **os.environ,
        "PYTHONPATH": os.getcwd(),
        "MARKOV_FINGERPRINT_KEY": SALT.hex(),
        "MARKOV_IMPORT_MEMORY_MB": "64",  # batches of 2,730 messages ...
        "MARKOV_IMPORT_COMMIT_SECONDS": "0",  # ... each committed: the disk fills after some commits
    }
    command = [sys.executable, "-m", "bot", "--db", str(db), "import", str(source), "--chain", "c"]
    return subprocess.run(
        [*command, "--no-progress"], env=env, preexec_fn=cap, capture_output=True, text=True, timeout=120
    )


def test_a_real_full_disk_stops_an_import_in_one_line_and_a_rerun_equals_a_clean_import(
    tmp_path: Path,
) -> None:
    source, db, clean = tmp_path / "corpus.txt", tmp_path / "full.sqlite3", tmp_path / "clean.sqlite3"
    lines = [f"w{i} and x{i % 97} then y{i * 7 % 1013} or z{i} q{i * 31 % 4099}" for i in range(30_000)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    full = limited_import(db, source, 1_500_000)
    assert full.returncode == 1, full.stdout + full.stderr
    assert "Traceback" not in full.stderr
    error = full.stderr.strip()
    assert "\n" not in error and "disk full" in error and "run it again" in error, error
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert 0 < kept < len(lines), "the limit should fall in the middle of the import"

    resumed = limited_import(db, source, None)
    assert resumed.returncode == 0, resumed.stderr
    assert f"already learned {kept:,}" in resumed.stdout
    assert limited_import(clean, source, None).returncode == 0
    assert logical_dump(db, SALT) == logical_dump(clean, SALT)


async def _learned_then_held(db_path: Path) -> Brain:
    brain = await Brain.open(db_path, key=SALT, walker="thread")
    await brain.opt_in("t", "g", "u")
    await brain.set_channel("t", "g", "c", True)
    for n, text in enumerate(("the first thing said", "the second thing said")):
        await brain.learn(Message("t", "g", "c", "u", str(n), text))
    await brain.flush()
    return brain


@pytest.mark.parametrize("how", ["by id", "from its text"])
async def test_a_delete_while_another_process_holds_the_database_waits_its_turn(
    db_path: Path, how: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An import beside the bot holds the file for up to its commit interval: the deleted message
    # must not stay learned because the write found it busy.
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    brain = await _learned_then_held(db_path)
    deleted = Message("t", "g", "c", "u", "0", "the first thing said")
    try:
        async with holding_the_database(db_path):
            unlearning = asyncio.create_task(
                brain.unlearn_id("t", "0") if how == "by id" else brain.unlearn(deleted)
            )
            while not any("unlearning message 0 waits" in r.getMessage() for r in caplog.records):
                assert not (await asyncio.wait({unlearning}, timeout=0.1))[0], unlearning.result()
            assert await brain.is_learned("t", "0")
        assert await asyncio.wait_for(unlearning, 60) is UnlearnStatus.UNLEARNED
        assert not await brain.is_learned("t", "0") and await brain.is_learned("t", "1")
    finally:
        await brain.close()


async def test_a_first_message_while_another_process_holds_the_database_waits_its_turn(
    db_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new author's (or chain's) first message writes its row at once: it must not be lost because
    # an import beside the bot held the file.
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    brain = await Brain.open(db_path, key=SALT, walker="thread")
    try:
        await brain.opt_in("t", "g", "u")
        await brain.set_channel("t", "g", "c", True)
        async with holding_the_database(db_path):
            learning = asyncio.create_task(
                brain.learn(Message("t", "g", "c", "u", "0", "the first thing said"))
            )
            while not any("learning message 0 waits" in r.getMessage() for r in caplog.records):
                assert not (await asyncio.wait({learning}, timeout=0.1))[0], learning.result()
            assert (await brain.member_info("t", "g", "u")).messages == 0
        assert (await asyncio.wait_for(learning, 60)).queued
        await brain.flush()
        assert (await brain.member_info("t", "g", "u")).messages == 1
    finally:
        await brain.close()


async def test_a_bot_starts_reads_and_learns_while_another_process_holds_the_database(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A restart during an import beside the bot: an up-to-date file opens without the write lock.
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    await (await _learned_then_held(db_path)).close()
    async with holding_the_database(db_path):
        brain = await Brain.open(db_path, key=SALT, walker="thread", in_background=True)
        try:
            assert (await brain.member_info("t", "g", "u")).messages == 2
            assert (await brain.learn(Message("t", "g", "c", "u", "2", "the third thing said"))).queued
        except BaseException:
            await brain.close()
            raise
    try:
        await brain.flush()  # once the file is free, what was queued meanwhile is committed
        assert (await brain.member_info("t", "g", "u")).messages == 3
    finally:
        await brain.close()


async def test_a_report_while_another_process_holds_the_database_does_not_wait_for_an_idle_merge(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The counts learned before stay in the deltas: the next start's idle merge wants the file, and
    # waits the busy timeout for it while an import holds it, with the write lock held.
    kept_in_deltas = {"key": SALT, "walker": "thread", "merge_rows": 10**9}  # as the shipped default does
    brain = await Brain.open(db_path, **kept_in_deltas, flush_interval=3600)
    await brain.opt_in("t", "g", "u")
    await brain.set_channel("t", "g", "c", True)
    for n in range(20):
        await brain.learn(Message("t", "g", "c", "u", str(n), f"the thing number {n} said"))
    await brain.close()
    async with holding_the_database(db_path):
        brain = await Brain.open(db_path, **kept_in_deltas, flush_interval=0.05)
        try:
            merging = brain.store._db.write_lock

            def merge_failed() -> bool:
                return any("learning paused" in r.getMessage() for r in caplog.records)

            while not merging.locked():
                assert not merge_failed()
                await asyncio.sleep(0.01)  # polled: the merge taking the lock, not the pause, is waited for
            (chain,) = await brain.chains()  # a report counts what is committed: nothing was queued
            assert not merge_failed()  # answered while the merge's first try still waits for the file
            assert chain.messages == 20
        finally:
            await brain.close()


@pytest.mark.parametrize("in_background", [False, True], ids=["learning here", "a learning process"])
async def test_a_report_while_learning_is_paused_by_another_process_answers_without_waiting_for_the_file(
    db_path: Path, in_background: bool
) -> None:
    # An import beside the bot holds the file for minutes: each report waited the busy timeout (5 s)
    # to say what it could say at once.
    walker = "process" if in_background else "thread"  # a bot's learning process, or none
    brain = await Brain.open(
        db_path, key=SALT, walker=walker, in_background=in_background, flush_interval=3600
    )
    report_within = schema.BUSY_TIMEOUT_MS / 1000 / 2
    try:
        await brain.opt_in("t", "g", "u")
        await brain.set_channel("t", "g", "c", True)
        for n, text in enumerate(("the first thing said", "the second thing said")):
            await brain.learn(Message("t", "g", "c", "u", str(n), text))
        await brain.flush()
        async with holding_the_database(db_path):
            await brain.learn(Message("t", "g", "c", "u", "2", "the third thing said"))
            with pytest.raises(schema.DatabaseBusy):
                await brain.flush()  # learning pauses
            await brain.learn(Message("t", "g", "c", "u", "3", "the fourth thing said"))
            (chain,) = await asyncio.wait_for(brain.chains(), report_within)
            report = await asyncio.wait_for(brain.stats(ChainKey("t", "g", "c"), fresh=True), report_within)
            assert chain.messages == report.messages_seen == 2
        (chain,) = await brain.chains()  # the file free again: what was queued is counted
        assert chain.messages == 4
    finally:
        await brain.close()


async def test_a_delete_that_waited_past_its_patience_fails_in_one_line_and_is_made_once_the_file_is_free(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(patience, "PATIENCE", 0.0)
    monkeypatch.setattr(patience, "BACKOFF_MAX", 0.05)
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    brain = await _learned_then_held(db_path)
    try:
        async with holding_the_database(db_path):
            with pytest.raises(StoreError, match="locked") as failed:
                await brain.unlearn_id("t", "0")
            assert await brain.is_learned("t", "0")
        assert "\n" not in str(failed.value)
        assert brain.catching_up is not None
        assert await brain.catching_up == 1  # kept in the learning log, and made once it is free
        assert not await brain.is_learned("t", "0")
        assert await brain.unlearn_id("t", "0") is UnlearnStatus.NOT_LEARNED
    finally:
        await brain.close()
