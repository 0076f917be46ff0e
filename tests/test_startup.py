"""Starting a bot (bot.startup): what stops a start is said in one line, the bot's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot import runtime, startup
from bot.config import Settings
from bot.core import background
from bot.core.brain import Brain
from bot.core.deferred import Deferred, Kind, by_id
from bot.core.models import Message

#: `markovbot run` from a main script that is gone by the time the walker process starts: spawn
#: runs the main script again in the child, which then fails before the walker answers.
VANISHING = """
import os, sys

if __name__ == "__main__":
    os.remove(__file__)
    from bot.cli import main

    sys.exit(main(sys.argv[1:]))
"""


def test_a_walker_that_cannot_start_stops_the_bot_with_one_line(tmp_path: Path) -> None:
    script = tmp_path / "markovbot_main.py"
    script.write_text(VANISHING)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "DISCORD_TOKEN": "not.a.token",  # the walker fails before the bot would connect
        "MARKOV_WALKER": "process",
    }
    env.pop("MARKOV_DATABASE_URL", None)
    run = subprocess.run(
        [sys.executable, str(script), "run", "--db", str(tmp_path / "m.db")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("markovbot: the walker process did not start"), run.stderr
    assert "unexpected error" not in run.stderr


async def test_a_started_bot_hands_the_interpreter_lock_back_to_its_event_loop_sooner(tmp_path: Path) -> None:
    before = sys.getswitchinterval()
    settings = Settings.from_env(
        {"MARKOV_DB": str(tmp_path / "m.db"), "MARKOV_WALKER": "thread"}, dotenv=False
    )
    try:
        brain = await startup.open_brain(settings)
        try:
            assert sys.getswitchinterval() == pytest.approx(runtime.SWITCH_INTERVAL)
        finally:
            await brain.close()
    finally:
        sys.setswitchinterval(before)


def _nice() -> int:
    """The calling thread's nice value (Linux keeps one per thread)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
async def test_a_started_bot_learns_in_threads_that_give_way_to_its_event_loop(tmp_path: Path) -> None:
    """The writer's connection, the learning log's and the loop's worker threads (counting, sealing)
    run NICE steps below the event loop; a command that only opens the database does not."""
    before = sys.getswitchinterval()
    settings = Settings.from_env(
        {"MARKOV_DB": str(tmp_path / "m.db"), "MARKOV_WALKER": "thread"}, dotenv=False
    )
    loop = _nice()
    try:
        brain = await startup.open_brain(settings)
        try:
            log = brain.store._queue.log
            assert log is not None
            threads = {"writer": brain.store.w, "log": log.conn, "reader": brain.store.r}
            for conn in threads.values():
                await conn.create_function("nice", 0, _nice)
            nice = {
                name: (await conn.execute_fetchall("SELECT nice()"))[0][0] for name, conn in threads.items()
            }
            nice["worker"] = await asyncio.to_thread(_nice)
            expected = min(19, loop + background.NICE)
            assert nice == {"writer": expected, "log": expected, "worker": expected, "reader": loop}
            assert _nice() == loop
        finally:
            await brain.close()
        brain = await Brain.open(settings.database, **settings.store_options)  # markovbot import, say
        try:
            await brain.store.w.create_function("nice", 0, _nice)
            assert (await brain.store.w.execute_fetchall("SELECT nice()"))[0][0] == loop
        finally:
            await brain.close()
    finally:
        sys.setswitchinterval(before)


async def test_a_started_bot_makes_the_changes_an_earlier_run_kept(tmp_path: Path) -> None:
    """A delete kept because the database was busy when the last run stopped is made at the start."""
    before = sys.getswitchinterval()
    settings = Settings.from_env(
        {"MARKOV_DB": str(tmp_path / "m.db"), "MARKOV_WALKER": "thread"}, dotenv=False
    )
    message = Message("t", "g", "c", "alice", "1", "the cat sat on the mat")
    earlier = await Brain.open(settings.database, **settings.store_options)
    try:
        await earlier.learn(message, require_consent=False)
        await earlier.flush()
        assert await earlier.store.defer(Deferred(Kind.DELETE, by_id("t", "1"))) == 1
    finally:
        await earlier.close()
    try:
        brain = await startup.open_brain(settings)
        try:
            assert brain.catching_up is not None  # open_brain started it
            assert await brain.catching_up == 1
            assert not await brain.is_learned("t", "1")
        finally:
            await brain.close()
    finally:
        sys.setswitchinterval(before)
