"""Starting a bot (bot.startup): what stops a start is said in one line, the bot's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import runtime, startup
from bot.config import Settings

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
