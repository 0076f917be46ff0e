"""End to end: the real discord.py client over real HTTP and websocket to a fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

from bot.core.brain import Brain
from bot.core.models import ChainKey, Message
from bot.discord_app import MarkovBot
from tests.core.dump import logical_dump
from tests.e2e.fake_discord import FakeDiscord, bot_settings, shut_down


async def test_log_in_sync_learn_and_answer_generate(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = bot_settings(fake, tmp_path / "e2e.sqlite3")
    brain = await Brain.open(settings.db_path, **settings.store_options)
    bot = MarkovBot(brain, settings, rng=random.Random(4))
    runner = asyncio.create_task(bot.start(settings.discord_token or ""))
    try:
        async with asyncio.timeout(15):
            while not bot.is_ready():  # wait_until_ready needs the client initialised by start() first
                assert not runner.done(), runner
                await asyncio.sleep(0.05)
        identify = await fake.wait_for(lambda r: r[1] == "IDENTIFY")
        assert identify[2]["intents"] & (1 << 15), "the Message Content intent is requested"
        method, _path, body = await fake.wait_for(
            lambda r: r[1].endswith(f"/guilds/{fake.guild_id}/commands")
        )
        assert method == "PUT" and [c["name"] for c in body] == ["markov"]
        subcommands = {o["name"] for o in body[0]["options"]}
        assert {"generate", "stats", "optin", "optout", "me", "forget"} <= subcommands

        await brain.set_channel("discord", fake.guild_id, fake.channel_id, True)
        optin = await fake.send_command(fake.member, "optin", [])
        _, _, answer = await fake.wait_for(lambda r: r[1].startswith(f"/interactions/{optin}/"))
        assert "opted in" in answer["data"]["content"]

        texts = [
            "the cat sat on the mat today",
            "the dog sat on the log yesterday",
            "a cat and a dog met there",
        ]
        ids = [await fake.send_message(fake.member, text) for text in texts]
        await fake.send_message(fake.owner, "the owner never opted in")
        for _ in range(100):
            await brain.flush()
            if await brain.is_learned("discord", ids[-1]):
                break
            await asyncio.sleep(0.05)
        assert all([await brain.is_learned("discord", i) for i in ids])
        assert (await brain.member_info("discord", fake.guild_id, fake.owner["id"])).messages == 0

        generate = await fake.send_command(
            fake.member, "generate", [{"name": "start", "type": 3, "value": "cat"}]
        )
        _, _, answer = await fake.wait_for(lambda r: r[1].startswith(f"/interactions/{generate}/"))
        data = answer["data"]
        assert data["allowed_mentions"] == {"parse": []}
        assert "cat" in data["content"].lower()
    finally:
        await shut_down(bot, runner, brain)


async def start(fake: FakeDiscord, db: Path) -> tuple[MarkovBot, asyncio.Task[None], Brain]:
    """Open the database and log a bot in to the fake; returns once it is ready."""
    settings = bot_settings(fake, db)
    brain = await Brain.open(settings.db_path, **settings.store_options)
    bot = MarkovBot(brain, settings, rng=random.Random(4))
    runner = asyncio.create_task(bot.start(settings.discord_token or ""))
    async with asyncio.timeout(15):
        while not bot.is_ready():
            assert not runner.done(), runner
            await asyncio.sleep(0.05)
    return bot, runner, brain


def trace(brain: Brain, names: list[str]) -> asyncio.Queue[str]:
    """A queue that gets a Brain method's name each time the bot's call to it has returned."""
    done: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        real = getattr(brain, name)

        async def traced(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            result = await _real(*args, **kwargs)
            done.put_nowait(_name)
            return result

        setattr(brain, name, traced)
    return done


async def test_deletes_and_edits_after_a_restart_are_unlearned_exactly(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    db = tmp_path / "e2e.sqlite3"
    texts = ["the cat sat on the mat today", "the dog sat on the log", "a cat and a dog met there"]
    bot, runner, brain = await start(fake, db)
    learned = trace(brain, ["learn"])
    try:
        await brain.set_channel("discord", fake.guild_id, fake.channel_id, True)
        await brain.opt_in("discord", fake.guild_id, fake.member["id"])
        ids = [await fake.send_message(fake.member, text) for text in texts]

        # The bot learns each message (a command round trip would not say when: events run apart).
        async with asyncio.timeout(10):
            for _ in ids:
                await learned.get()
        await brain.flush()
        assert all([await brain.is_learned("discord", i) for i in ids])
    finally:
        await shut_down(bot, runner, brain)

    bot, runner, brain = await start(fake, db)  # a new process: discord.py's message cache is empty
    handled = trace(brain, ["delete", "edit"])
    try:
        await fake.dispatch(
            "MESSAGE_DELETE", {"id": ids[0], "channel_id": fake.channel_id, "guild_id": fake.guild_id}
        )
        edited = fake.message(fake.member, "zebras are striped", ids[1])
        edited["edited_timestamp"] = "2026-01-01T00:01:00+00:00"
        await fake.dispatch("MESSAGE_UPDATE", edited)

        async with asyncio.timeout(10):
            assert sorted([await handled.get(), await handled.get()]) == ["delete", "edit"]
        await brain.flush()
        assert not await brain.is_learned("discord", ids[0])
        counts = await brain.counts(ChainKey("discord", fake.guild_id, fake.channel_id))
        assert (counts["messages_seen"], counts["tokens_seen"]) == (2, 3 + 7)
        key = brain.store.key
    finally:
        await shut_down(bot, runner, brain)

    # Exactly a database that only ever learned the edited message and the untouched one.
    never = await Brain.open(tmp_path / "never.sqlite3", key=key)
    try:
        for mid, text in ((ids[1], "zebras are striped"), (ids[2], texts[2])):
            await never.learn(
                Message("discord", fake.guild_id, fake.channel_id, fake.member["id"], mid, text),
                require_consent=False,
            )
    finally:
        await never.close()
    assert logical_dump(db, key) == logical_dump(tmp_path / "never.sqlite3", key)
