"""What the Matrix bot says, against a real Synapse: short, never a ping or a pill, `!markov`, a cooldown."""

from __future__ import annotations

import asyncio
import re

import pytest

import bot.stats_text
from bot.core.retention import RetentionReport
from tests.matrix.conftest import BotFactory, Human
from tests.matrix.test_matrix_app import command, notices, setup_room

PING = re.compile(r"@(everyone|here|room)\b|@[a-z0-9._=/+-]+:[a-z0-9.-]+|matrix\.to", re.IGNORECASE)


async def test_replies_are_short_and_ping_nobody(
    start_bot: BotFactory, people: tuple[Human, Human], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = people
    titles: list[str] = []
    real_card = bot.stats_text.render_card

    def card(report: RetentionReport, title: str) -> bytes:
        titles.append(title)
        return real_card(report, title)

    monkeypatch.setattr(bot.stats_text, "render_card", card)
    running, room = await setup_room(start_bot, people)
    await command(alice, running, room, "!markov channel enable")
    (opted,) = await command(alice, running, room, "!markov optin")
    assert "`!markov optout`" in opted and "/markov" not in opted  # the prefix members type here
    await command(alice, running, room, "!markov settings copy_guard off")
    await alice.say(room, f"ask https://matrix.to/#/{bob.user_id} about it")

    (unknown,) = await command(alice, running, room, "!markov @room")
    assert unknown.startswith("Unknown command '@") and "`!markov help`" in unknown
    (setting,) = await command(alice, running, room, "!markov settings @room on")
    assert "unknown setting '@" in setting
    huge = "!markov generate " + "@room " * 1700  # over 10,000 characters
    assert len(huge) > 10_000
    (word,) = await command(alice, running, room, huge)
    assert word.startswith("I don't know the word '@") and len(word) < 150

    # The learned link became the neutral placeholder: no user id comes back out.
    (generated,) = await command(alice, running, room, "!markov generate")
    assert generated == "ask @\u200bsomeone about it"

    # The stats card is titled with the room's name, not its id.
    await command(alice, running, room, "!markov stats")
    assert titles == ["markov test"]

    said = notices(alice, running, room)
    for text in [unknown, setting, word, generated]:
        assert not PING.search(text), text
    assert all(len(text) <= 8000 for text in said)


async def test_generate_has_a_per_member_cooldown_said_once(
    start_bot: BotFactory, people: tuple[Human, Human]
) -> None:
    alice, bob = people
    running, room = await setup_room(start_bot, people)
    await command(alice, running, room, "!markov channel enable")
    await command(alice, running, room, "!markov optin")
    await command(alice, running, room, "!markov settings copy_guard off")
    said = await alice.say(room, "the only thing I ever said")
    async with asyncio.timeout(20):  # the bot has it (queued at least), then it is committed
        while not await running.brain.is_learned("matrix", said):
            await alice.client.sync(timeout=100)
    await running.brain.flush()
    (first,) = await command(alice, running, room, "!markov generate")
    assert first == "the only thing I ever said"
    (slow,) = await command(alice, running, room, "!markov generate")
    assert slow.startswith("Slow down: you can generate again in") and "generate and stats" in slow
    before = len(notices(alice, running, room))
    for _ in range(10):
        await alice.say(room, "!markov generate count:5")
    (other,) = await command(bob, running, room, "!markov generate")  # bob has his own cooldown
    assert other == "the only thing I ever said"
    await alice.client.sync(timeout=0)
    assert len(notices(alice, running, room)) == before + 1  # the ten went unanswered; bob's was answered
