"""Several processes on one database file: each completes, and the file equals a serial run."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.core import chain as chainmod
from bot.core.brain import Brain
from bot.core.messagekeys import message_key
from bot.core.models import ChainKey, Message
from bot.importer import import_file
from tests.core.dump import hub_count, hub_errors, logical_dump

SALT = bytes(range(16))  # the fingerprint key of every database here
HUB_ROWS = 20  # so that both writers update the same hubs
CHAIN = ChainKey("local", "local", "c")

# `markovbot import`'s own function, with the fingerprint key and hub threshold fixed (the CLI makes a key file).
IMPORT = """
import asyncio, sys
from pathlib import Path
from bot.core.brain import Brain
from bot.core.models import ChainKey
from bot.importer import import_file


async def main() -> None:
    db, corpus = sys.argv[1], Path(sys.argv[2])
    print("ready", flush=True)
    sys.stdin.readline()
    brain = await Brain.open(db, key=bytes(range(16)), hub_rows=20, batch_size=40)
    try:
        await import_file(brain, corpus, ChainKey("local", "local", "c"), progress=False)
    finally:
        await brain.close()


asyncio.run(main())
"""

# The bot learning live: one message at a time, committed by the flusher.
LIVE = """
import asyncio, sys
from bot.core.brain import Brain
from bot.core.models import Message


async def main() -> None:
    db, corpus = sys.argv[1], sys.argv[2]
    lines = open(corpus, encoding="utf-8").read().splitlines()
    print("ready", flush=True)
    sys.stdin.readline()
    brain = await Brain.open(db, key=bytes(range(16)), hub_rows=20, flush_interval=0.05, batch_size=40)
    try:
        await brain.opt_in("t", "g", "alice")
        await brain.set_channel("t", "g", "c", True)
        for n, line in enumerate(lines):
            await brain.learn(Message("t", "g", "c", "alice", f"live{n}", line))
            if n % 100 == 0:
                await asyncio.sleep(0)  # let the flusher commit while messages keep coming
    finally:
        await brain.close()


asyncio.run(main())
"""

FORGET = """
import asyncio, sys
from bot.core.brain import Brain
from bot.core.models import Message


async def main() -> None:
    brain = await Brain.open(sys.argv[1], key=bytes(range(16)))
    try:
        await brain.forget("t", "g", "alice")
        if len(sys.argv) > 2:  # a new member, whose id must not be the one alice had
            await brain.opt_in("t", "g", "carol")
            await brain.learn(Message("t", "g", "c", "carol", "carol1", "carol writes her own words"))
    finally:
        await brain.close()


asyncio.run(main())
"""


def corpus(path: Path, tag: str, n: int) -> Path:
    """Lines sharing wide contexts (hubs both writers update) and new words (tokens both create)."""
    lines = [f"the common {tag}{i} w{i % 300} and w{(i * 7) % 500} {tag}{i % 40} ok" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_together(tmp_path: Path, *jobs: tuple[str, list[str]]) -> None:
    """Start each script, wait until all are ready, release them at once, and check each succeeded."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    processes: list[subprocess.Popen[str]] = []
    for source, args in jobs:
        script = tmp_path / f"job{len(processes)}.py"
        script.write_text(source, encoding="utf-8")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script), *args],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.close()
        for process in processes:
            assert process.stderr is not None
            assert process.wait(timeout=120) == 0, process.stderr.read()
    finally:
        for process in processes:
            process.kill()
            process.wait()


async def serial(db: Path, imports: list[Path], live: list[str]) -> None:
    """The same work, one writer after the other."""
    brain = await Brain.open(db, key=SALT, hub_rows=HUB_ROWS)
    try:
        for path in imports:
            await import_file(brain, path, CHAIN, progress=False)
        if live:
            await brain.opt_in("t", "g", "alice")
            await brain.set_channel("t", "g", "c", True)
            for n, line in enumerate(live):
                await brain.learn(Message("t", "g", "c", "alice", f"live{n}", line))
    finally:
        await brain.close()


def check(db: Path, expected: dict[str, Any]) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert hub_count(db) > 0 and hub_errors(db) == []
    assert logical_dump(db, SALT) == expected


def test_two_imports_and_an_import_beside_live_learning_equal_a_serial_run(tmp_path: Path) -> None:
    a = corpus(tmp_path / "a.txt", "a", 4000)
    b = corpus(tmp_path / "b.txt", "b", 4000)
    expected_imports, expected_live = tmp_path / "imports.sqlite3", tmp_path / "live.sqlite3"
    asyncio.run(serial(expected_imports, [a, b], []))
    asyncio.run(serial(expected_live, [a], b.read_text("utf-8").splitlines()))
    imports, live = logical_dump(expected_imports, SALT), logical_dump(expected_live, SALT)
    for round_ in range(3):  # each on a new file: the migrations race too
        db = tmp_path / f"imports{round_}.sqlite3"
        run_together(tmp_path, (IMPORT, [str(db), str(a)]), (IMPORT, [str(db), str(b)]))
        check(db, imports)
        db = tmp_path / f"live{round_}.sqlite3"
        run_together(tmp_path, (IMPORT, [str(db), str(a)]), (LIVE, [str(db), str(b)]))
        check(db, live)


async def test_the_walker_serves_no_transition_another_process_forgot(tmp_path: Path) -> None:
    db = tmp_path / "forget.sqlite3"
    brain = await Brain.open(db, key=SALT)
    try:
        for who in ("alice", "bob"):
            await brain.opt_in("t", "g", who)
        await brain.set_channel("t", "g", "c", True)
        await brain.learn(Message("t", "g", "c", "alice", "1", "only alice says this"))
        await brain.learn(Message("t", "g", "c", "bob", "2", "bob says that"))
        await brain.flush()
        info = await brain.store.find_chain(ChainKey("t", "g", "c"))
        assert info is not None
        ids = [await brain.store.token_id(t) for t in ("only", "alice", "bob", "says")]
        assert None not in ids
        only, alice, bob, says = (i for i in ids if i is not None)
        alice_ctx, bob_ctx = chainmod.pack([only, alice]), chainmod.pack([bob, says])
        assert (await brain.store.walker.successors(info.id, alice_ctx))[0]  # cached on the walker now
        assert (await brain.store.walker.successors(info.id, bob_ctx))[0]

        script = tmp_path / "forget.py"
        script.write_text(FORGET, encoding="utf-8")
        forget = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(db), env={**os.environ, "PYTHONPATH": os.getcwd()}
        )
        assert await forget.wait() == 0

        assert not (await brain.store.walker.successors(info.id, alice_ctx))[0]
        assert (await brain.store.walker.successors(info.id, bob_ctx))[0]
        for _ in range(20):
            result = await brain.generate(ChainKey("t", "g", "c"), guard=False)
            assert result.ok and "alice" not in (result.text or "")
    finally:
        await brain.close()


async def test_messages_queued_for_a_member_another_process_forgot_are_not_learned(tmp_path: Path) -> None:
    db = tmp_path / "queued.sqlite3"
    brain = await Brain.open(db, key=SALT, flush_interval=1.0)  # the test flushes by itself
    try:
        for who in ("bob", "alice"):  # alice last: her id is the largest one
            await brain.opt_in("t", "g", who)
        await brain.set_channel("t", "g", "c", True)
        await brain.learn(Message("t", "g", "c", "bob", "b1", "bob was here first"))
        await brain.learn(Message("t", "g", "c", "alice", "a1", "alice said something"))
        await brain.flush()
        await brain.learn(Message("t", "g", "c", "alice", "a2", "alice private second thought"))
        assert brain.store.pending == 1

        script = tmp_path / "forget.py"
        script.write_text(FORGET, encoding="utf-8")
        forget = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(db), "and carol", env={**os.environ, "PYTHONPATH": os.getcwd()}
        )
        assert await forget.wait() == 0
        await brain.flush()
        assert not await brain.is_opted_in("t", "g", "alice")  # the consent cache was read again
        learned = await brain.learn(Message("t", "g", "c", "alice", "a3", "alice once more"))
        assert not learned.queued
    finally:
        await brain.close()
    dump = logical_dump(db, SALT)
    members = {key[1][2] for key in dump["transitions"]}
    assert members == {"bob", "carol"}
    carol = {key[3] for key in dump["transitions"] if key[1][2] == "carol"}
    assert carol == {"carol", "writes", "her", "own", "words", "<END>"}
    assert sorted(m[0] for m in dump["messages"]) == sorted(message_key("t", i) for i in ("b1", "carol1"))
