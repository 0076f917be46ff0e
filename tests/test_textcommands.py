"""Text commands: those that only answer change nothing, so a front end may answer them beside the
messages that come after them (the Matrix adapter does)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bot.core.brain import Brain
from bot.core.models import Message
from bot.stats_text import stats_reply
from bot.textcommands import Context, TextCommands
from tests.core.dump import logical_dump

P, G, C = "local", "guild", "room"
ANSWERING = [
    "!markov",
    "!markov help",
    "!markov generate",
    "!markov generate the count:2",
    "!markov GENERATE",
    "!markov stats",
    "!markov me",
    "!markov frobnicate",
    "!markov 'unclosed",
]
CHANGING = [
    ("bob", "!markov optin"),
    ("alice", "!markov optout"),
    ("alice", "!markov forget confirm"),
    ("alice", "!markov channel disable"),
    ("alice", "!markov settings order 1"),
]


async def _taught(brain: Brain) -> TextCommands:
    await brain.set_channel(P, G, C, True)
    await brain.opt_in(P, G, "alice")
    for i, text in enumerate(["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"]):
        await brain.learn(Message(P, G, C, "alice", f"m{i}", text))
    await brain.flush()
    return TextCommands(brain, prefix="!markov", stats=stats_reply, rng=random.Random(1))


async def held(brain: Brain, db_path: Path) -> tuple[Any, ...]:
    """Everything the database holds: the chains (tests.core.dump), consent, channels and settings."""
    consent = [await brain.is_opted_in(P, G, member) for member in ("alice", "bob")]
    return logical_dump(db_path), consent, await brain.enabled_channels(P, G), await brain.settings(P, G)


@pytest.mark.parametrize("line", ANSWERING)
async def test_a_command_that_answers_only_changes_nothing(brain: Brain, db_path: Path, line: str) -> None:
    commands = await _taught(brain)
    before = await held(brain, db_path)
    assert commands.answers_only(line)
    assert await commands.handle(Context(P, G, C, "alice", is_moderator=True), line)
    await brain.flush()
    assert await held(brain, db_path) == before


@pytest.mark.parametrize(("who", "line"), CHANGING)
async def test_a_command_that_changes_something_is_not_answered_beside(
    brain: Brain, db_path: Path, who: str, line: str
) -> None:
    commands = await _taught(brain)
    before = await held(brain, db_path)
    assert not commands.answers_only(line)
    await commands.handle(Context(P, G, C, who, is_moderator=True), line)
    await brain.flush()
    assert await held(brain, db_path) != before
