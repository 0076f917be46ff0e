"""The Discord adapter: MarkovBot (a commands.Bot over one Brain) and `markovbot run`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import signal
from collections.abc import Sequence
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import MISSING

from bot import replies
from bot.config import Settings
from bot.cooldowns import Cooldowns
from bot.core.brain import Brain
from bot.core.schema import StoreError
from bot.startup import StartupError, open_brain, say
from cogs.common import NO_MENTIONS, Interaction, describe_forbidden, reply

log = logging.getLogger(__name__)

EXTENSIONS = ("cogs.markov", "cogs.consent", "cogs.admin", "cogs.learning")
HASH_KEY = "discord.commands_hash"
GUILD_KEY = "discord.commands_guild"  # the test server commands were last synced to
SHUTDOWN_TIMEOUT = 10.0  # seconds the client gets to finish after close()
INVALID_SHARD = 4010  # gateway close codes
SHARDING_REQUIRED = 4011
MESSAGE_CACHE = 10_000  # messages kept in memory, so edits and deletes of recent messages can be unlearned


def intents() -> discord.Intents:
    """What the bot subscribes to: servers, their messages and message text (no member list)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    return wanted


class MarkovTree(app_commands.CommandTree["MarkovBot"]):
    """The command tree: answers any unexpected command error with a short ephemeral message."""

    async def on_error(self, interaction: Interaction, error: app_commands.AppCommandError) -> None:
        """Explain the failure to the invoker; log what is ours to fix."""
        original = getattr(error, "original", error)
        if isinstance(original, discord.Forbidden):
            log.warning("missing permission for /%s: %s", _name(interaction), original.text)
            text = describe_forbidden(original, interaction.channel)
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = replies.SERVER_ONLY
        elif isinstance(error, app_commands.MissingPermissions):
            text = replies.NEED_MANAGE_SERVER
        elif isinstance(error, app_commands.TransformerError):
            text = replies.bad_option(error)
        elif isinstance(error, app_commands.CheckFailure):
            text = str(error) or replies.CANNOT_USE_HERE
        elif isinstance(original, StoreError):  # busy, full: the admin needs a line, not a traceback
            log.warning("/%s changed nothing: %s", _name(interaction), original)
            text = replies.not_saved(original)
        else:
            log.error("/%s failed", _name(interaction), exc_info=original)
            text = replies.UNEXPECTED
        try:
            await reply(interaction, text)
        except discord.HTTPException as exc:
            log.warning("could not report an error to the invoker: %s", exc)


def _name(interaction: Interaction) -> str:
    command = interaction.command
    return command.qualified_name if command is not None else "?"


class MarkovBot(commands.Bot):
    """A commands.Bot over one Brain; every command is a subcommand of /markov."""

    def __init__(
        self,
        brain: Brain,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("intents", intents())
        options.setdefault("max_messages", MESSAGE_CACHE)
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            allowed_mentions=NO_MENTIONS,
            tree_cls=MarkovTree,
            **options,
        )
        self.brain = brain
        self.settings = settings
        self.rng = rng or random.Random()
        self.cooldowns = Cooldowns(settings.cooldown_seconds)
        self.markov_group = app_commands.Group(
            name="markov",
            description="A Markov chain of this channel, learned only from members who opted in.",
            guild_only=True,
        )
        self._subcommands: dict[str, list[str]] = {}  # cog name -> its /markov subcommands
        self.synced: bool | None = None  # after setup: True when commands were synced, False when not

    async def setup_hook(self) -> None:
        """Register /markov, load the cogs, and sync the commands if they changed (one process of several)."""
        self.tree.add_command(self.markov_group)
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.settings.shards.syncs_commands:
            self.synced = await self.sync_commands()
        else:  # a restart of this process must not resync what another process keeps up to date
            log.info("commands are synced by the process holding shard 0: not syncing")
            self.synced = False

    async def add_markov_cog(self, cog: commands.Cog) -> None:
        """Add a cog and move its app commands under the shared /markov group.

        discord.py binds app commands to the cog they are defined in, and a Group can only be
        the class attribute of one cog (GroupCog), so each cog defines plain commands and they
        are re-parented here, with public API only: add_cog registers them at the root, and
        they move into the group before anything is synced. remove_cog undoes it, so
        unload_extension and reload_extension work as usual.
        """
        await self.add_cog(cog)
        moved = []
        for command in cog.get_app_commands():
            self.tree.remove_command(command.name)
            self.markov_group.add_command(command, override=True)
            moved.append(command.name)
        self._subcommands[cog.qualified_name] = moved

    async def remove_cog(
        self,
        name: str,
        /,
        *,
        guild: discord.abc.Snowflake | None = MISSING,
        guilds: Sequence[discord.abc.Snowflake] = MISSING,
    ) -> commands.Cog | None:
        """Remove a cog, and its subcommands from /markov."""
        for command in self._subcommands.pop(name, []):
            self.markov_group.remove_command(command)
        return await super().remove_cog(name, guild=guild, guilds=guilds)

    def sync_target(self) -> discord.Object | None:
        """The test server commands sync to (DISCORD_GUILD_ID), or None for global commands."""
        guild_id = self.settings.discord_guild_id
        return discord.Object(id=guild_id) if guild_id else None

    def commands_payload(self, guild: discord.abc.Snowflake | None) -> list[dict[str, Any]]:
        """The JSON Discord would receive for this target's commands."""
        return [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync the command tree to its target when it changed since the last sync (hash in the database)."""
        brain = self.brain
        guild = self.sync_target()
        last_guild_key = f"{GUILD_KEY}:{self.application_id}"
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        else:
            await self._remove_test_server_copy(last_guild_key)
        payload = json.dumps(self.commands_payload(guild), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(payload.encode()).hexdigest()
        target = f"guild:{guild.id}" if guild is not None else "global"
        key = f"{HASH_KEY}:{self.application_id}:{target}"
        if not force and await brain.get_state(key) == digest:
            log.info("commands unchanged since the last sync (%s): not syncing", target)
            return False
        synced = await self.tree.sync(guild=guild)
        await self._record(key, digest)
        if guild is not None:
            await self._record(last_guild_key, str(guild.id))
        log.info("synced %d command(s) to %s", len(synced), target)
        return True

    async def _remove_test_server_copy(self, last_guild_key: str) -> None:
        """Commands once synced to DISCORD_GUILD_ID would show twice there next to global ones: remove them."""
        brain = self.brain
        old = await brain.get_state(last_guild_key)
        if not old:
            return
        try:
            await self.tree.sync(guild=discord.Object(id=int(old)))  # no guild commands: removes them
        except discord.HTTPException as exc:
            log.warning("could not remove the commands of test server %s: %s", old, exc)
            return
        await self._record(f"{HASH_KEY}:{self.application_id}:guild:{old}", "")
        await self._record(last_guild_key, "")
        log.info("removed the commands synced to test server %s earlier", old)

    async def _record(self, key: str, value: str) -> None:
        """Save what was synced; when the database refuses (busy, full), the next start syncs again."""
        try:
            await self.brain.set_state(key, value)
        except StoreError as exc:
            log.warning("could not record the commands' sync (the next start syncs again): %s", exc)

    async def on_message(self, message: discord.Message, /) -> None:
        """No prefix commands: messages are only learned (cogs.learning listens)."""

    async def on_ready(self) -> None:
        """Say who we are once connected (the servers counted are this process's shards' only)."""
        log.info(
            "logged in as %s (id %s) in %d server(s), %s",
            self.user,
            self.application_id,
            len(self.guilds),
            self.settings.shards.describe(),
        )


class ShardedMarkovBot(MarkovBot, commands.AutoShardedBot):
    """MarkovBot over several gateway connections: the shards of settings.shards (all of them when ids is None)."""


def make_bot(brain: Brain, settings: Settings, **options: Any) -> MarkovBot:
    """A MarkovBot for the settings: one connection unsharded, else the shards they name."""
    plan = settings.shards
    if plan.count is None:
        return MarkovBot(brain, settings, **options)
    if plan.ids is not None:
        options["shard_ids"] = list(plan.ids)
    return ShardedMarkovBot(brain, settings, shard_count=plan.count, **options)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None, brain: Brain | None = None) -> int:
    """Run the bot until Discord closes it or stop is set (SIGINT/SIGTERM set it); returns an exit code."""
    token = settings.discord_token
    if not token:
        say("DISCORD_TOKEN is not set: put the bot token in the environment or in .env (see the README).")
        return 2
    try:
        brain = brain or await open_brain(settings)
    except StartupError as exc:
        say(str(exc))
        return 1
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    bot = make_bot(brain, settings)
    code = 0
    try:
        async with bot:
            runner = asyncio.create_task(bot.start(token), name="discord-client")
            stopper = asyncio.create_task(stop.wait(), name="discord-stop")
            done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if runner in done:
                stopper.cancel()
                runner.result()
            else:
                log.info("shutting down: closing the Discord connection and flushing what was learned")
                await bot.close()
                try:
                    await asyncio.wait_for(runner, timeout=SHUTDOWN_TIMEOUT)
                except TimeoutError:
                    log.warning("the Discord client did not stop within %.0f s; leaving it", SHUTDOWN_TIMEOUT)
    except discord.LoginFailure:
        say(
            "Discord rejected DISCORD_TOKEN: copy a fresh token from the Developer Portal (Bot → Reset Token)."
        )
        code = 1
    except discord.PrivilegedIntentsRequired:
        say(
            "Discord refused the Message Content intent: enable it in the Developer Portal "
            "(Bot → Privileged Gateway Intents → Message Content Intent)."
        )
        code = 1
    except discord.ConnectionClosed as exc:
        say(closed_reason(exc.code, settings))
        code = 1
    except (aiohttp.ClientError, OSError, discord.GatewayNotFound) as exc:
        say(f"cannot reach Discord: {exc}")
        code = 1
    except discord.HTTPException as exc:
        say(f"Discord refused to start the bot: {exc}")
        code = 1
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await brain.close()
    return code


def closed_reason(code: int, settings: Settings) -> str:
    """One line for a gateway close that ends the bot (4011 and 4010 are about sharding)."""
    if code == SHARDING_REQUIRED:
        return (
            "Discord requires sharding for this bot (2,500 servers or more): "
            "run it with --shard-count N (or MARKOV_SHARD_COUNT), see the README."
        )
    if code == INVALID_SHARD:
        return (
            f"Discord refused the shards ({settings.shards.describe()}): every process needs the same "
            "--shard-count, and the shards must be below it."
        )
    return f"Discord closed the connection (code {code}); see its meaning in Discord's gateway close codes."


def run_discord(settings: Settings) -> int:
    """`markovbot run`: run the Discord bot; returns the process exit code."""
    if not settings.discord_token:
        say("DISCORD_TOKEN is not set: put the bot token in the environment or in .env (see the README).")
        return 2
    try:
        return asyncio.run(serve(settings))
    except KeyboardInterrupt:
        return 130
