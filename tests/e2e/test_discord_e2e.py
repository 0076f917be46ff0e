"""End to end: the real discord.py client over real HTTP and websocket to a fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from bot.core.brain import Brain
from bot.discord_app import MarkovBot
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
