"""The walker: in a process of its own it walks exactly as on a thread, and it never outlives the bot."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.core.brain import Brain
from bot.core.models import ChainKey, GenerateStatus, Message
from tests.core.test_retention import varied_corpus

P, G, C = "test", "guild", "chan"
KEY = ChainKey(P, G, C)
FINGERPRINT_KEY = b"0123456789abcdef"


async def learned(path: Path, walker: str) -> Brain:
    brain = await Brain.open(path, walker=walker, key=FINGERPRINT_KEY, flush_interval=0.05)
    for i, text in enumerate(varied_corpus(400, words=600)):
        await brain.learn(Message(P, G, C, f"m{i % 3}", str(i), text), require_consent=False)
    await brain.flush()
    return brain


async def outputs(brain: Brain) -> list[tuple[GenerateStatus, str | None]]:
    """Ten replies from one random stream (its state must carry from call to call), some anchored."""
    rng = random.Random(11)
    replies = []
    for i in range(10):
        start = "w1" if i % 3 == 0 else None
        author = "m1" if i % 4 == 0 else None
        result = await brain.generate(KEY, rng=rng, start=start, author=author)
        replies.append((result.status, result.text))
    return replies


async def test_the_walker_process_replies_exactly_as_the_walker_thread(tmp_path: Path) -> None:
    seen = {}
    for walker in ("thread", "process"):
        brain = await learned(tmp_path / f"{walker}.sqlite3", walker)
        try:
            assert (brain.store.walker_pid is not None) == (walker == "process")
            seen[walker] = (await outputs(brain), (await brain.stats(KEY)).as_json())
        finally:
            await brain.close()
    thread, process = seen["thread"], seen["process"]
    assert len({text for _, text in thread[0]}) > 5, "different replies, not one repeated"
    assert process == thread


async def test_a_killed_walker_process_is_replaced_and_the_reply_still_comes(tmp_path: Path) -> None:
    brain = await learned(tmp_path / "m.sqlite3", "process")
    try:
        first = brain.store.walker_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        result = await brain.generate(KEY, rng=random.Random(1))
        assert result.status is GenerateStatus.OK
        assert brain.store.walker_pid not in (None, first)
    finally:
        await brain.close()
    assert not alive(first)


def alive(pid: int) -> bool:
    """True while a process (not a zombie) has this pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


BOT = """
import asyncio, sys
from bot.core.brain import Brain

async def main():
    brain = await Brain.open(sys.argv[1], walker="process")
    print(brain.store.walker_pid, flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc")
def test_the_walker_process_ends_when_the_bot_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "bot_main.py"
    script.write_text(BOT)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    bot = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "k.sqlite3")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert bot.stdout is not None
        walker_pid = int(bot.stdout.readline())
        assert alive(walker_pid)
    finally:
        bot.kill()
        bot.wait()
    deadline = time.monotonic() + 10
    while alive(walker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(walker_pid), "the walker process outlived the bot"


UNGUARDED = """
import asyncio, sys
from bot.core.brain import Brain

asyncio.run(Brain.open(sys.argv[1], walker="process"))
"""


def test_a_script_without_a_main_guard_is_told_how_to_run_the_walker(tmp_path: Path) -> None:
    # The walker process starts by importing the main script again: unguarded, it would open the
    # database once more in there. The bot refuses to start, and says what to change.
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "u.sqlite3")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "WalkerDied" in last and 'if __name__ == "__main__":' in last and "MARKOV_WALKER=thread" in last
