"""What every Discord cog shares: ids for the core, channel access rules, replies, confirm views, cooldowns."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeAlias

import discord

from bot.core.models import ChainKey, Message

log = logging.getLogger(__name__)

PLATFORM = "discord"
NO_MENTIONS = discord.AllowedMentions.none()
LEARNED_TYPES = (discord.MessageType.default, discord.MessageType.reply)

Interaction: TypeAlias = discord.Interaction[Any]
#: Channels whose messages make up a chain, or that a `channel` option may name.
ChainChannel: TypeAlias = discord.TextChannel | discord.VoiceChannel | discord.Thread

CHANNEL_HELP = "I need View Channel, Send Messages, Read Message History, Embed Links and Attach Files there."


def chain_channel_id(channel: Any) -> str:
    """The channel whose chain a channel's messages belong to: a thread's parent, else itself."""
    if isinstance(channel, discord.Thread) and channel.parent_id is not None:
        return str(channel.parent_id)
    return str(channel.id)


def chain_key(guild: discord.abc.Snowflake, channel: Any) -> ChainKey:
    """The core's key for a channel's chain."""
    return ChainKey(PLATFORM, str(guild.id), chain_channel_id(channel))


def core_message(message: discord.Message) -> Message | None:
    """A guild message as the core sees it (None outside a guild)."""
    if message.guild is None:
        return None
    return Message(
        PLATFORM,
        str(message.guild.id),
        chain_channel_id(message.channel),
        str(message.author.id),
        str(message.id),
        message.content,
    )


def is_learnable(message: discord.Message) -> bool:
    """True for a guild message a person typed: no bot, webhook, system message, DM, or words addressed to me."""
    guild = message.guild
    if (
        guild is None
        or message.author.bot
        or message.webhook_id is not None
        or message.type not in LEARNED_TYPES
    ):
        return False
    return guild.me is None or guild.me.id not in message.raw_mentions


def is_nsfw(channel: Any) -> bool:
    """True when a channel (or a thread's parent) is age-restricted."""
    check = getattr(channel, "is_nsfw", None)
    return bool(check()) if callable(check) else False


def channel_label(channel: Any) -> str:
    """How to name a channel in a reply (a mention, which never pings)."""
    mention = getattr(channel, "mention", None)
    return str(mention) if mention else f"<#{channel.id}>"


def refuse_channel(interaction: Interaction, channel: Any, *, posting: bool) -> str | None:
    """Why the invoker may not use this channel's chain here (None when they may).

    The channel must be in this server and readable by the invoker (View Channel and Read
    Message History). When the chain's text is posted (posting=True), an age-restricted
    channel's chain is only posted in an age-restricted channel.
    """
    guild = interaction.guild
    if guild is None:
        return "This command only works in a server."
    channel_guild = getattr(channel, "guild", None)
    if channel_guild is None or channel_guild.id != guild.id:
        return "That channel is in another server: chains never leave their server."
    member = interaction.user
    if not isinstance(member, discord.Member):
        member = guild.get_member(interaction.user.id)  # type: ignore[assignment]
        if member is None:
            return "I can't tell which channels you can read, so I won't use another channel's chain."
    permissions = channel.permissions_for(member)
    if not (permissions.view_channel and permissions.read_message_history):
        return "You can't read that channel's history, so I won't use its chain for you."
    if posting and is_nsfw(channel) and not is_nsfw(interaction.channel):
        return "That channel is age-restricted: its chain is only posted in age-restricted channels."
    return None


async def reply(interaction: Interaction, content: str, *, ephemeral: bool = True, **kwargs: Any) -> None:
    """Answer an interaction whether or not it was answered already; never pings anyone."""
    kwargs.setdefault("allowed_mentions", NO_MENTIONS)
    if interaction.response.is_done():
        await interaction.followup.send(content, ephemeral=ephemeral, **kwargs)
    else:
        await interaction.response.send_message(content, ephemeral=ephemeral, **kwargs)


def is_manager(interaction: Interaction) -> bool:
    """True when the invoker has Manage Server (the permissions Discord resolved for this channel)."""
    return interaction.guild is not None and interaction.permissions.manage_guild


MANAGER_ONLY = "Only members with the Manage Server permission can use this command."


class Cooldowns:
    """A per-member cooldown (guild, member) → time of last use; the clock is injectable."""

    def __init__(self, seconds: float, clock: Callable[[], float] | None = None) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last: dict[tuple[int, int], float] = {}

    def now(self) -> float:
        """The current time (looked up at call time, so a test clock can replace time.monotonic)."""
        return self._clock() if self._clock is not None else time.monotonic()

    def remaining(self, guild: int, member: int) -> float:
        """Seconds until this member may go again (0 when they may now)."""
        last = self._last.get((guild, member))
        if last is None or self.seconds <= 0:
            return 0.0
        return max(0.0, last + self.seconds - self.now())

    def use(self, guild: int, member: int) -> None:
        """Record a use now."""
        if self.seconds > 0:
            self._last[(guild, member)] = self.now()
            if len(self._last) > 10_000:
                cutoff = self.now() - self.seconds
                self._last = {k: v for k, v in self._last.items() if v > cutoff}


class ConfirmView(discord.ui.View):
    """Confirm and Cancel buttons only the invoker may press; `result` is True, False or None (timeout)."""

    def __init__(
        self,
        owner_id: int,
        *,
        confirm_label: str = "Confirm",
        working: str = "Working on it…",
        cancelled: str = "Cancelled: nothing was changed.",
        timeout: float = 60.0,
    ) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.result: bool | None = None
        self.working = working
        self.cancelled = cancelled
        self.confirm.label = confirm_label

    async def interaction_check(self, interaction: Interaction) -> bool:
        """Only the member who ran the command may answer."""
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "Only the member who ran this command can answer it.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        return False

    async def _finish(self, interaction: Interaction, result: bool) -> None:
        if self.is_finished():
            return
        self.result = result
        self.stop()
        text = self.working if result else self.cancelled
        await interaction.response.edit_message(content=text, view=None, allowed_mentions=NO_MENTIONS)

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: Interaction, button: discord.ui.Button[ConfirmView]) -> None:
        """Go ahead."""
        await self._finish(interaction, True)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary)
    async def cancel(self, interaction: Interaction, button: discord.ui.Button[ConfirmView]) -> None:
        """Do nothing."""
        await self._finish(interaction, False)


async def confirm(interaction: Interaction, prompt: str, view: ConfirmView, *, ephemeral: bool) -> bool:
    """Ask for confirmation; True when confirmed. Cancel and timeout are answered here."""
    await interaction.response.send_message(
        prompt, view=view, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
    )
    await view.wait()
    if view.result is None:
        await edit_reply(interaction, "Timed out: nothing was changed.")
    return view.result is True


async def edit_reply(interaction: Interaction, content: str) -> None:
    """Replace the command's reply (and drop its buttons); log rather than raise when Discord refuses."""
    try:
        await interaction.edit_original_response(content=content, view=None, allowed_mentions=NO_MENTIONS)
    except discord.HTTPException as exc:
        log.warning("could not edit a reply: %s", exc)


def describe_forbidden(error: discord.Forbidden, where: Any = None) -> str:
    """A clear sentence for a permission Discord refused."""
    place = f" in {channel_label(where)}" if where is not None else " here"
    return f"I'm missing a permission{place} (Discord said: {error.text or 'Forbidden'}). {CHANNEL_HELP}"
