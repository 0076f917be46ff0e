"""Text commands: those that only answer change nothing, so a front end may answer them beside the
messages that come after them (the Matrix adapter does)."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest

from bot import replies
from bot.core import schema
from bot.core.brain import Brain
from bot.core.models import Message
from bot.stats_text import stats_reply
from bot.textcommands import Context, TextCommands
from tests.core.dump import logical_dump
from tests.lockholder import holding_the_database

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


@pytest.mark.parametrize(("who", "line"), CHANGING)
async def test_a_change_the_database_refuses_is_answered_busy_and_changes_nothing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, who: str, line: str
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)  # an import holds the file for minutes
    brain = await Brain.open(db_path, flush_interval=0.05)
    try:
        commands = await _taught(brain)
        before = await held(brain, db_path)
        async with holding_the_database(db_path):
            answer = await commands.handle(Context(P, G, C, who, is_moderator=True), line)
        assert [reply.text for reply in answer] == [replies.DATABASE_BUSY]
        await brain.flush()
        assert await held(brain, db_path) == before
        said = [r for r in caplog.records if "changed nothing" in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING and said[0].exc_info is None
        assert "database is locked" in said[0].getMessage()
    finally:
        await brain.close()


async def test_a_report_while_another_process_holds_the_database_counts_what_is_committed(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)
    brain = await Brain.open(db_path, flush_interval=3600)  # what is queued stays queued until flushed
    try:
        commands = await _taught(brain)  # three messages learned and committed
        await brain.learn(Message(P, G, C, "alice", "m3", "a fourth thing said"))
        alice = Context(P, G, C, "alice")
        async with holding_the_database(db_path):
            (me,) = await commands.handle(alice, "!markov me")
            stats = await commands.handle(alice, "!markov stats")
        assert "I have learned 3 of your messages" in me.text
        assert "3 messages" in stats[0].text and replies.DATABASE_BUSY not in stats[0].text
        (me,) = await commands.handle(alice, "!markov me")  # once free, what was queued counts
        assert "I have learned 4 of your messages" in me.text
    finally:
        await brain.close()
