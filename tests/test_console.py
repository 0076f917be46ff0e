"""The console: a local channel where lines are learned and /markov commands answer."""

from __future__ import annotations

import io
import random
from pathlib import Path

from bot.console import Console
from bot.core.brain import Brain


async def test_lines_are_learned_and_commands_answer(brain: Brain, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(brain, "room", out=out, card_dir=tmp_path, rng=random.Random(3))
    lines = "\n".join(
        [
            "the cat sat on the mat",
            "the dog sat on the log",
            "a cat and a dog",
            "/markov generate count:2",
            "/markov generate start:dog",
            "/markov generate count:9",
            "/markov stats",
            "/markov me",
            "/markov settings order 7",
            "/markov frobnicate",
            "/quit",
            "never read",
        ]
    )
    await console.run(io.StringIO(lines + "\n"))
    text = out.getvalue()
    assert "count must be a whole number from 1 to 5" in text
    assert "Not changed: order must be between 1 and 3" in text
    assert "Unknown command 'frobnicate'" in text
    assert "I have learned 3 of your messages" in text
    assert "seen: 3 messages" in text
    assert (tmp_path / "stats-room.png").read_bytes()[:4] == b"\x89PNG"
    assert "never read" not in text
    assert (await brain.member_info("local", "local", "console-user")).messages == 3


async def test_forget_asks_for_confirmation(brain: Brain, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(brain, "room", out=out, card_dir=tmp_path)
    await console.run(io.StringIO("hello there friend\n/markov forget\n"))
    assert "forget confirm" in out.getvalue()
    assert (await brain.member_info("local", "local", "console-user")).messages == 1
    await console.handle("/markov forget confirm")
    assert "forgot 1 of your messages" in out.getvalue()
    assert (await brain.member_info("local", "local", "console-user")).messages == 0


async def test_a_mistyped_command_is_answered_and_not_learned(brain: Brain, tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(brain, "room", out=out, card_dir=tmp_path)
    await console.run(io.StringIO("/foo bar\n/markov-typo generate\n" + "x" * 4001 + "\nhello there\n"))
    text = out.getvalue()
    assert "Unknown command '/foo' (not learned)" in text
    assert "Unknown command '/markov-typo' (not learned)" in text
    assert "(not learned: longer than 4,000 characters)" in text
    await brain.flush()
    assert (await brain.member_info("local", "local", "console-user")).messages == 1
    assert await brain.store.token_id("foo") is None and await brain.store.token_id("typo") is None
