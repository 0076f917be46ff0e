"""Manage Server commands: /markov channel enable|disable, settings, train, reset."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import replies
from bot.core.brain import Brain
from bot.core.models import ChainKey, LearnStatus
from bot.core.schema import StoreError
from bot.replies import MANAGER_ONLY, describe_settings
from cogs.common import (
    CONFIRM_TIMEOUT,
    NO_MENTIONS,
    PLATFORM,
    ChainChannel,
    ConfirmView,
    Interaction,
    OwnerView,
    chain_key,
    channel_label,
    confirm,
    confirmed,
    core_message,
    edit_reply,
    in_time,
    is_learnable,
    is_manager,
    refuse_channel,
    reply,
    shown,
)

if TYPE_CHECKING:
    from bot.discord_app import MarkovBot

log = logging.getLogger(__name__)

CURSOR_KEY = "discord.train_cursor"
PROGRESS_INTERVAL = 3.0
MAX_TRAIN = 100_000


@dataclass
class TrainProgress:
    """What one /markov train run has done so far."""

    read: int = 0
    learned: int = 0
    known: int = 0
    not_opted_in: int = 0
    skipped: int = 0
    last_id: int | None = None

    def describe(self) -> str:
        """One line a moderator can read."""
        return replies.train_counts(self.read, self.learned, self.known, self.not_opted_in, self.skipped)


class CancelView(OwnerView):
    """One Cancel button for a running backfill; only the invoker may press it."""

    def __init__(self, owner_id: int, timeout: float | None = None) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.cancelled = False

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: Interaction, button: discord.ui.Button[CancelView]) -> None:
        """Stop after the current message; what was learned stays, and the next run resumes."""
        self.cancelled = True
        self.stop()
        await self.close_with(interaction, replies.CANCELLING)


class Admin(commands.Cog):
    """Where the bot learns, how it behaves, backfilling history and resetting chains."""

    channel = app_commands.Group(
        name="channel", description="Turn learning on or off in a channel (Manage Server)."
    )

    def __init__(
        self,
        brain: Brain,
        *,
        progress_interval: float = PROGRESS_INTERVAL,
        confirm_timeout: float = CONFIRM_TIMEOUT,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.brain = brain
        self.progress_interval = progress_interval
        self.confirm_timeout = confirm_timeout
        self._clock = clock
        #: Backfills running now, by (guild id, channel id), with their Cancel button.
        self.running: dict[tuple[int, int], CancelView] = {}

    def now(self) -> float:
        """The clock progress edits are timed by."""
        return self._clock() if self._clock is not None else time.monotonic()

    async def _allowed(self, interaction: Interaction, channel: Any) -> bool:
        """Manage Server, and a channel option the invoker can read; answers the refusal itself."""
        if not is_manager(interaction):
            await reply(interaction, MANAGER_ONLY)
            return False
        refusal = refuse_channel(interaction, channel, posting=False)
        if refusal:
            await reply(interaction, refusal)
            return False
        return True

    # ---------------------------------------------------------------- channel enable|disable

    @channel.command(name="enable", description="Learn from opted-in members in a channel (Manage Server).")
    @app_commands.describe(channel="The channel (default: this one); a thread means its parent channel.")
    async def enable(self, interaction: Interaction, channel: ChainChannel | None = None) -> None:
        """Enable learning in a channel."""
        await self._set_channel(interaction, channel, True)

    @channel.command(name="disable", description="Stop learning in a channel (Manage Server).")
    @app_commands.describe(channel="The channel (default: this one); a thread means its parent channel.")
    async def disable(self, interaction: Interaction, channel: ChainChannel | None = None) -> None:
        """Disable learning in a channel (what was learned stays)."""
        await self._set_channel(interaction, channel, False)

    async def _set_channel(
        self, interaction: Interaction, channel: ChainChannel | None, enable: bool
    ) -> None:
        target = channel or interaction.channel
        if not await self._allowed(interaction, target) or interaction.guild is None:
            return
        guild = interaction.guild
        key = chain_key(guild, target)
        where = f"<#{key.channel}>"
        setting = self.brain.set_channel(PLATFORM, key.guild, key.channel, enable)
        changed = await in_time(interaction, setting, ephemeral=True)
        text = replies.channel_learning(where, enable=enable, changed=changed, can_reset=True)
        if changed and enable:
            mine = target.permissions_for(guild.me) if target is not None else None
            if mine is not None and not (mine.view_channel and mine.read_message_history):
                text += replies.I_CANNOT_READ_YET
        await reply(interaction, text)

    # ---------------------------------------------------------------- settings

    @app_commands.command(
        name="settings", description="Show or change this server's settings (Manage Server)."
    )
    @app_commands.describe(
        order="Words of context for NEW chains (1–3; higher copies more).",
        reply_on_mention="Answer when someone mentions me.",
        chime_chance="Chance of joining in after a learned message (0–0.5).",
        run_length="Copy guard: refuse outputs with this many words in a row from one message (3–32, new chains).",
        copy_guard="Refuse to post copies of learned messages.",
    )
    async def settings(
        self,
        interaction: Interaction,
        order: app_commands.Range[int, 1, 3] | None = None,
        reply_on_mention: bool | None = None,
        chime_chance: app_commands.Range[float, 0.0, 0.5] | None = None,
        run_length: app_commands.Range[int, 3, 32] | None = None,
        copy_guard: bool | None = None,
    ) -> None:
        """Without options, show the settings; with some, change them."""
        if not await self._allowed(interaction, interaction.channel) or interaction.guild_id is None:
            return
        guild = str(interaction.guild_id)
        changes = {
            "order": order,
            "reply_on_mention": reply_on_mention,
            "chime_chance": chime_chance,
            "run_length": run_length,
            "copy_guard": copy_guard,
        }
        changes = {name: value for name, value in changes.items() if value is not None}
        if not changes:
            await reply(interaction, describe_settings(await self.brain.settings(PLATFORM, guild)))
            return
        try:
            updated = await in_time(
                interaction, self.brain.update_settings(PLATFORM, guild, **changes), ephemeral=True
            )
        except ValueError as exc:
            await reply(interaction, replies.not_changed(str(exc)))
            return
        await reply(interaction, f"{replies.SETTINGS_SAVED}\n{describe_settings(updated)}")

    # ---------------------------------------------------------------- train

    @app_commands.command(
        name="train", description="Learn a channel's past messages from opted-in members (Manage Server)."
    )
    @app_commands.describe(
        channel="The channel or thread (default: this one).",
        limit="How many messages to read in this run (the next run goes on from there).",
        from_newest="Start again from the newest message (what was learned is skipped).",
    )
    async def train(
        self,
        interaction: Interaction,
        channel: ChainChannel | None = None,
        limit: app_commands.Range[int, 1, MAX_TRAIN] = 1000,
        from_newest: bool = False,
    ) -> None:
        """Backfill: read history newest first, from where the last run stopped, learning what may be."""
        source = channel or interaction.channel
        if not await self._allowed(interaction, source) or interaction.guild is None or source is None:
            return
        guild = interaction.guild
        key = chain_key(guild, source)
        where = channel_label(source)
        if not await self.brain.is_enabled(PLATFORM, key.guild, key.channel):
            await reply(interaction, replies.train_not_enabled(where))
            return
        mine = source.permissions_for(guild.me)
        if not (mine.view_channel and mine.read_message_history):
            await reply(interaction, replies.train_cannot_read(where))
            return
        running = (guild.id, source.id)
        if running in self.running:
            await reply(interaction, replies.train_running(where))
            return
        view = self.running[running] = CancelView(interaction.user.id)
        try:
            await self._train(interaction, source, limit, from_newest, view)
        finally:
            del self.running[running]

    async def _train(
        self, interaction: Interaction, source: Any, limit: int, from_newest: bool, view: CancelView
    ) -> None:
        # Newest first, so the most recent (most relevant) messages are learned first. The cursor
        # is the oldest message read so far; the next run reads on, older than it.
        where = channel_label(source)
        cursor_key = f"{CURSOR_KEY}:{interaction.guild_id}:{source.id}"
        cursor = None if from_newest else await self.brain.get_state(cursor_key)
        before = discord.Object(id=int(cursor)) if cursor else None
        progress = TrainProgress(last_id=int(cursor) if cursor else None)
        await interaction.response.send_message(
            shown(replies.train_started(where, resuming=before is not None)),
            view=view,
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        last_edit = self.now()
        failure: str | None = None
        try:
            async for message in source.history(limit=limit, before=before, oldest_first=False):
                if view.cancelled:
                    break
                await self._learn_one(message, progress)
                progress.last_id = message.id
                if self.now() - last_edit >= self.progress_interval:
                    await self._save_cursor(cursor_key, progress)
                    await self._edit(interaction, replies.train_progress(where, progress.describe()), view)
                    last_edit = self.now()
        except discord.Forbidden:
            log.warning("cannot read the history of channel %s in guild %s", source.id, interaction.guild_id)
            failure = replies.train_cannot_read(where)
        finally:
            view.stop()
            await self._save_cursor(cursor_key, progress)
            await self.brain.settle()
        counts = progress.describe()
        if failure:
            text = replies.train_failed(failure, counts)
        elif view.cancelled:
            text = replies.train_cancelled(counts)
        elif progress.read < limit:
            text = replies.train_done(where, counts)
        else:
            text = replies.train_stopped(limit, counts)
        await edit_reply(interaction, text)

    async def _learn_one(self, message: discord.Message, progress: TrainProgress) -> None:
        progress.read += 1
        core = core_message(message)
        if core is None or not is_learnable(message):
            progress.skipped += 1
            return
        if await self.brain.is_learned(PLATFORM, core.id):
            progress.known += 1
            return
        result = await self.brain.learn(core)
        if result.queued:
            progress.learned += 1
        elif result.status is LearnStatus.NOT_OPTED_IN:
            progress.not_opted_in += 1
        elif result.status is LearnStatus.ALREADY_PENDING:
            progress.known += 1
        else:
            progress.skipped += 1

    async def _save_cursor(self, key: str, progress: TrainProgress) -> None:
        """Save where the backfill got to; when the database refuses, the next run reads some again
        (what is learned already is counted as such, never twice)."""
        if progress.last_id is None:
            return
        try:
            await self.brain.set_state(key, str(progress.last_id))
        except StoreError as exc:
            log.warning("could not save where /markov train got to (a rerun reads some again): %s", exc)

    async def _edit(self, interaction: Interaction, content: str, view: discord.ui.View) -> None:
        try:
            await interaction.edit_original_response(
                content=shown(content),
                view=view if not view.is_finished() else None,
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException as exc:  # e.g. the interaction expired after 15 minutes
            log.info("could not show backfill progress: %s", exc)

    # ---------------------------------------------------------------- reset

    @app_commands.command(name="reset", description="Delete a channel's chain (Manage Server; asks first).")
    @app_commands.describe(channel="The channel (default: this one).")
    async def reset(self, interaction: Interaction, channel: ChainChannel | None = None) -> None:
        """After a confirmation, delete a channel's chain; learning goes on if the channel is enabled."""
        source = channel or interaction.channel
        if not await self._allowed(interaction, source) or interaction.guild is None or source is None:
            return
        key = chain_key(interaction.guild, source)
        where = f"<#{key.channel}>"
        held = await in_time(interaction, self._held(key), ephemeral=False)
        view = ConfirmView(
            interaction.user.id,
            confirm_label="Reset",
            working=replies.reset_working(where),
            cancelled=replies.reset_cancelled(where),
            timeout=self.confirm_timeout,
        )
        prompt = replies.reset_prompt(interaction.user.display_name, where, held)
        if not await confirm(interaction, prompt, view, ephemeral=False):
            return
        removed = await confirmed(interaction, self.brain.reset(key))
        if removed is None:
            return
        await self.brain.set_state(f"{CURSOR_KEY}:{interaction.guild_id}:{key.channel}", "")
        log.info("reset chain of channel %s in guild %s (%d messages)", key.channel, key.guild, removed)
        await edit_reply(interaction, replies.reset_done(where, removed))

    async def _held(self, key: ChainKey) -> int:
        """How many messages a chain learned, what was queued included (committed first, when the file can be written)."""
        await self.brain.settle()
        return int((await self.brain.counts(key))["messages_seen"])


async def setup(bot: MarkovBot) -> None:
    """Load the cog with the bot's brain."""
    await bot.add_markov_cog(Admin(bot.brain))
