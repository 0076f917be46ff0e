"""SIGKILL in the middle of work: the database stays sound, loses at most a batch, and learns nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.core import keys
from bot.core.brain import Brain
from bot.core.messagekeys import message_key
from bot.core.models import ChainKey, Message
from bot.core.tokens import tokenize
from bot.importer import import_file
from tests.core.dump import logical_dump, transition_rows

LINES = 30_000
BATCH = 500


def corpus(path: Path) -> list[str]:
    words = [f"w{i}" for i in range(400)]
    lines = [" ".join(words[(i * 7 + j * 13) % 400] for j in range(4 + i % 9)) for i in range(LINES)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines


def committed(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def kill_when(
    process: subprocess.Popen[bytes], db: Path, at_least: int, timeout: float = 60, *, group: bool = False
) -> int:
    """SIGKILL the process (group: with every process of its session) once at_least messages are
    committed; returns how many there were."""
    deadline = time.monotonic() + timeout
    while committed(db) < at_least:
        assert process.poll() is None, "the process ended before it could be killed"
        assert time.monotonic() < deadline, "nothing was committed in time"
        time.sleep(0.05)
    if group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.send_signal(signal.SIGKILL)
    process.wait()
    return committed(db)


def check_sound(db: Path, lines: list[str]) -> int:
    """integrity_check passes and the counts are exactly those of the committed messages."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        learned = [row[0] for row in conn.execute("SELECT id FROM messages")]
        seen = conn.execute(
            "SELECT coalesce(sum(messages_seen), 0), coalesce(sum(tokens_seen), 0) FROM chains"
        ).fetchone()
        total = sum(row[-1] for row in transition_rows(conn))
    line_of = {  # the ids an import and the live script give line n
        message_key(platform, f"{prefix}:{n}"): n
        for platform, prefix in (("local", "corpus.txt"), ("t", "live"))
        for n in range(1, len(lines) + 1)
    }
    numbers = [line_of[k] for k in learned]  # every learned message is a line of the corpus
    tokens = sum(len(tokenize(lines[n - 1])) for n in numbers)
    assert seen == (len(learned), tokens)
    assert total == tokens + len(learned)  # one transition per token, plus one into END per message
    return len(learned)


def env() -> dict[str, str]:
    return {
        **os.environ,
        "MARKOV_BATCH_SIZE": str(BATCH),
        "MARKOV_FLUSH_INTERVAL": "0.2",
        "MARKOV_IMPORT_MEMORY_MB": "64",  # an import's batches hold 2,730 messages ...
        "MARKOV_IMPORT_COMMIT_SECONDS": "0",  # ... and each commits: the kill falls between commits
        "PYTHONPATH": os.getcwd(),
    }


def test_kill_during_import_then_resume_learns_everything_once(tmp_path: Path) -> None:
    source = tmp_path / "corpus.txt"
    lines = corpus(source)
    db = tmp_path / "crash.sqlite3"
    command = [
        sys.executable,
        "-m",
        "bot",
        "--db",
        str(db),
        "import",
        str(source),
        "--chain",
        "c",
        "--no-progress",
    ]
    process = subprocess.Popen(command, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    at_kill = kill_when(process, db, 3 * BATCH)
    assert at_kill < LINES, "the import finished before the kill: make the corpus bigger"
    after = check_sound(db, lines)
    assert after >= at_kill  # nothing committed was lost

    resumed = subprocess.run(command, env=env(), capture_output=True, text=True, check=True)
    assert f"already learned {after:,}" in resumed.stdout
    assert check_sound(db, lines) == LINES

    clean = tmp_path / "clean.sqlite3"

    async def clean_import() -> None:
        key = keys.read_file(keys.key_file(db))
        brain = await Brain.open(clean, key=key)
        try:
            await import_file(brain, source, ChainKey("local", "local", "c"), progress=False)
        finally:
            await brain.close()

    asyncio.run(clean_import())
    assert logical_dump(db) == logical_dump(clean)


LIVE = """
import asyncio, sys
from bot.core import keys
from bot.core.brain import Brain
from bot.core.models import Message

async def main():
    in_background = sys.argv[3] == "background"  # a running bot's: the log applied by a learning process
    brain = await Brain.open(
        sys.argv[1], flush_interval=0.2, batch_size=200, in_background=in_background,
        walker="process" if in_background else "thread",
    )
    await brain.opt_in("t", "g", "alice")
    await brain.set_channel("t", "g", "c", True)
    lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
    for n, line in enumerate(lines, start=1):
        await brain.learn(Message("t", "g", "c", "alice", f"live:{n}", line))
        if n % 50 == 0:
            await asyncio.sleep(0.01)  # live traffic arrives over time

if __name__ == "__main__":  # the learning process imports this script too
    asyncio.run(main())
"""


@pytest.mark.parametrize("learning", ["here", "background"])
def test_kill_during_live_learning_loses_at_most_the_open_batch(tmp_path: Path, learning: str) -> None:
    source = tmp_path / "corpus.txt"
    lines = corpus(source)
    db = tmp_path / "live.sqlite3"
    script = tmp_path / "live.py"
    script.write_text(LIVE, encoding="utf-8")
    process = subprocess.Popen(  # a session of its own: the bot and its learning process die together
        [sys.executable, str(script), str(db), str(source), learning], env=env(), start_new_session=True
    )
    at_kill = kill_when(process, db, 1000, group=True)
    before = check_sound(db, lines)
    assert before >= at_kill
    resumed = subprocess.run(  # the next open replays what the log holds: each message learned once
        [sys.executable, "-c", RESUME, str(db)], env=env(), capture_output=True, text=True, check=True
    )
    assert check_sound(db, lines) == before + int(resumed.stdout)


RESUME = """
import asyncio, sys
from bot.core.brain import Brain

async def main():
    brain = await Brain.open(sys.argv[1])
    await brain.close()
    print(brain.store.committed)

asyncio.run(main())
"""

FORGET = """
import asyncio, sys
from bot.core import keys
from bot.core.brain import Brain

async def main():
    brain = await Brain.open(sys.argv[1])
    print("forgetting", flush=True)
    await brain.forget("t", "g", "alice")
    await brain.close()

asyncio.run(main())
"""


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_kill_during_forget_is_all_or_nothing(tmp_path: Path, delay: float) -> None:
    db = tmp_path / "forget.sqlite3"

    async def learn() -> None:
        brain = await Brain.open(db, batch_size=5000)
        try:
            for who in ("alice", "bob"):
                await brain.opt_in("t", "g", who)
            await brain.set_channel("t", "g", "c", True)
            for i in range(20_000):
                who = "alice" if i % 3 else "bob"
                await brain.learn(
                    Message("t", "g", "c", who, str(i), f"word{i % 500} and word{i % 77} then word{i % 13}")
                )
        finally:
            await brain.close()

    asyncio.run(learn())
    before = logical_dump(db)
    script = tmp_path / "forget.py"
    script.write_text(FORGET, encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(script), str(db)], env=env(), stdout=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.readline()
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    after = logical_dump(db)
    alice = [k for k in after["transitions"] if k[1][2] == "alice"]
    if alice:
        assert after == before  # the kill came first: nothing of alice was touched
    else:
        authors = Counter(k[1][2] for k in after["transitions"])
        assert set(authors) == {"bob"}
        assert all(m[2][2] == "bob" for m in after["messages"])
