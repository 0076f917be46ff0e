"""MarkovBot itself: the /markov tree, syncing only when it changed, and `markovbot run` exit codes."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import discord
import pytest
import simcord
from discord import app_commands

from bot.config import Settings
from bot.core.brain import Brain
from bot.discord_app import MarkovBot, intents, run_discord, serve
from bot.shards import ShardPlan
from tests.cogs.conftest import World
from tests.lockholder import holding_the_database

SUBCOMMANDS = {
    "generate",
    "stats",
    "optin",
    "optout",
    "me",
    "forget",
    "channel",
    "settings",
    "train",
    "reset",
}


def puts(env: simcord.Env) -> list[str]:
    return [r.path for r in env.http_requests if r.method == "PUT" and r.path.endswith("/commands")]


async def test_everything_is_one_markov_group(world: World) -> None:
    roots = world.bot.tree.get_commands()
    assert [c.name for c in roots] == ["markov"]
    [markov] = roots
    assert isinstance(markov, app_commands.Group)
    assert {c.name for c in markov.commands} == SUBCOMMANDS
    channel = markov.get_command("channel")
    assert isinstance(channel, app_commands.Group)
    assert {c.name for c in channel.commands} == {"enable", "disable"}
    assert markov.guild_only
    assert set(world.admin.available_commands(world.general)) >= {
        "markov generate",
        "markov channel enable",
        "markov reset",
    }


async def test_reloading_an_extension_keeps_one_markov_group(world: World) -> None:
    await world.bot.reload_extension("cogs.markov")
    await world.bot.reload_extension("cogs.admin")
    [markov] = world.bot.tree.get_commands()
    assert {c.name for c in markov.commands} == SUBCOMMANDS
    await world.bot.unload_extension("cogs.consent")
    assert {c.name for c in markov.commands} == SUBCOMMANDS - {"optin", "optout", "me", "forget"}
    await world.bot.load_extension("cogs.consent")
    result = await world.bob.slash(world.general, "markov optin")
    assert result.ephemeral
    assert await world.brain.is_opted_in("discord", world.gid, str(world.bob.id))


async def test_commands_synced_while_another_process_holds_the_database_sync_again_next_time(
    impatient: None, world: World, brain: Brain, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    env = world.env

    @app_commands.command(name="extra", description="A new subcommand.")
    async def extra(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("extra", ephemeral=True)

    world.bot.markov_group.add_command(extra)
    async with holding_the_database(settings.db_path):  # an import beside the bot, say
        assert await world.bot.sync_commands() is True  # synced; its record could not be written
    assert len(puts(env)) == 2
    said = [r for r in caplog.records if "could not record the commands' sync" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING and not said[0].exc_info
    assert await world.bot.sync_commands() is True  # not recorded: synced again, and recorded now
    assert await world.bot.sync_commands() is False
    assert len(puts(env)) == 3


def test_intents_are_only_what_the_bot_needs() -> None:
    wanted = intents()
    assert wanted.guilds and wanted.guild_messages and wanted.message_content
    assert not wanted.members and not wanted.presences and not wanted.dm_messages


async def test_commands_sync_once_then_only_when_changed(
    world: World, brain: Brain, settings: Settings
) -> None:
    env = world.env
    assert world.bot.synced is True
    assert len(puts(env)) == 1
    key = f"discord.commands_hash:{world.bot.application_id}:global"
    digest = await brain.store.get_meta(key)
    assert digest and len(digest) == 64

    restarted = MarkovBot(brain, settings, rng=random.Random(1))
    await env.restart_bot(restarted)
    assert restarted.synced is False  # same tree: no sync on this start
    assert len(puts(env)) == 1
    result = await world.alice.slash(world.general, "markov me")  # the commands are still there
    assert result.ephemeral

    @app_commands.command(name="extra", description="A new subcommand.")
    async def extra(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("extra", ephemeral=True)

    restarted.markov_group.add_command(extra)
    assert await restarted.sync_commands() is True
    assert len(puts(env)) == 2
    assert await brain.store.get_meta(key) != digest
    assert await restarted.sync_commands() is False
    assert len(puts(env)) == 2


async def test_commands_sync_to_the_test_server_when_configured(db_path: Path, brain: Brain) -> None:
    server = 123456789012345678
    bot = MarkovBot(brain, Settings(db_path=db_path, discord_guild_id=server))
    async with simcord.run(bot, strict_sync=False) as env:
        assert bot.synced is True
        app = bot.application_id
        assert puts(env) == [f"/applications/{app}/guilds/{server}/commands"]
        assert await brain.store.get_meta(f"discord.commands_hash:{app}:guild:{server}")
        assert [name for name, _ in env.backend.commands[server]] == ["markov"]

        # Back to global commands: the test server's copy is removed, so nothing shows twice there.
        await env.restart_bot(MarkovBot(brain, Settings(db_path=db_path)))
        assert puts(env)[1:] == [
            f"/applications/{app}/guilds/{server}/commands",
            f"/applications/{app}/commands",
        ]
        assert [r.json for r in env.http_requests if r.method == "PUT"][1] == []
        assert env.backend.commands[server] == {}
        assert not await brain.store.get_meta(f"discord.commands_guild:{app}")


async def test_only_the_process_holding_shard_0_syncs_the_commands(db_path: Path, brain: Brain) -> None:
    other = MarkovBot(brain, Settings(db_path=db_path, shards=ShardPlan((1, 2), 4)))
    async with simcord.run(other, strict_sync=False) as env:
        assert other.synced is False and puts(env) == []  # a fresh database: nothing was ever synced
        await env.restart_bot(MarkovBot(brain, Settings(db_path=db_path, shards=ShardPlan((1, 2), 4))))
        assert puts(env) == []  # restarting another process never syncs
        first = MarkovBot(brain, Settings(db_path=db_path, shards=ShardPlan((0,), 4)))
        await env.restart_bot(first)
        assert first.synced is True and puts(env) == [f"/applications/{first.application_id}/commands"]


def test_no_token_is_one_line_and_exit_code_2(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_discord(Settings(db_path=db_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "DISCORD_TOKEN is not set" in err
    assert "Traceback" not in err


def test_a_rejected_token_is_one_line_and_exit_code_1(
    db_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "NOT.A.REAL-TOKEN-zzzzzzzzzzzzzzzzzzzzzzzz"

    async def reject(self: MarkovBot, token: str, *, reconnect: bool = True) -> None:
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(MarkovBot, "start", reject)
    caplog.set_level(logging.DEBUG)
    assert run_discord(Settings(db_path=db_path, discord_token=secret)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Discord rejected DISCORD_TOKEN" in err
    assert secret not in err and secret not in caplog.text
    assert "Traceback" not in err


async def test_serve_closes_the_brain_when_told_to_stop(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    started = asyncio.Event()

    closed = asyncio.Event()
    close = MarkovBot.close

    async def fake_start(self: MarkovBot, token: str, *, reconnect: bool = True) -> None:
        started.set()
        await closed.wait()  # "connected" until closed, like discord.py's start()

    async def fake_close(self: MarkovBot) -> None:
        closed.set()
        await close(self)

    monkeypatch.setattr(MarkovBot, "start", fake_start)
    monkeypatch.setattr(MarkovBot, "close", fake_close)
    brain = await Brain.open(db_path)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(Settings(db_path=db_path, discord_token="x"), stop=stop, brain=brain))
    await started.wait()
    stop.set()
    assert await asyncio.wait_for(task, 5) == 0
    assert brain.store._writer is None  # closed (and flushed) by serve


async def test_serve_returns_to_its_caller_when_cancelled(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    connecting = asyncio.Event()

    async def hang(self: MarkovBot, token: str, *, reconnect: bool = True) -> None:
        connecting.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(MarkovBot, "start", hang)
    brain = await Brain.open(db_path)
    task = asyncio.create_task(serve(Settings(db_path=db_path, discord_token="x"), brain=brain))
    await asyncio.wait_for(connecting.wait(), 10)  # the bot is running, connecting to Discord
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert brain.store._writer is None
