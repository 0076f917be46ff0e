"""What every Discord cog shares: ids for the core, channel access rules, the send choke point, owner-only views."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeAlias, TypeVar

import discord

from bot import replies
from bot.core.models import ChainKey, Message
from bot.core.schema import StoreError

log = logging.getLogger(__name__)

PLATFORM = "discord"
NO_MENTIONS = discord.AllowedMentions.none()
LEARNED_TYPES = (discord.MessageType.default, discord.MessageType.reply)

Interaction: TypeAlias = discord.Interaction[Any]
#: Channels whose messages make up a chain, or that a `channel` option may name.
ChainChannel: TypeAlias = discord.TextChannel | discord.VoiceChannel | discord.Thread

CONFIRM_TIMEOUT = 60.0  # seconds a Confirm/Cancel prompt waits
# Discord drops an interaction not answered within 3 s: work not done by then is answered "thinking…" first.
DEFER_SECONDS = 2.0


def shown(text: str) -> str:
    """Text as Discord gets it: the one choke point (mentions defused, input quoted short, ≤ 2,000 chars)."""
    return replies.render(text, replies.DISCORD)


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
        return replies.SERVER_ONLY
    channel_guild = getattr(channel, "guild", None)
    if channel_guild is None or channel_guild.id != guild.id:
        return replies.OTHER_SERVER
    member = interaction.user
    if not isinstance(member, discord.Member):
        member = guild.get_member(interaction.user.id)  # type: ignore[assignment]
        if member is None:
            return replies.UNKNOWN_READER
    permissions = channel.permissions_for(member)
    if not (permissions.view_channel and permissions.read_message_history):
        return replies.CANNOT_READ
    if posting and is_nsfw(channel) and not is_nsfw(interaction.channel):
        return replies.AGE_RESTRICTED
    return None


def private_reason(interaction: Interaction, source: Any) -> str | None:
    """Why source's text or figures may be shown only to the invoker here (None: they may be posted).

    Without the members intent nobody's list of readers is known, so this decides from the
    permission overwrites: public in the source's own channel (or a thread of it), or when
    @everyone can view and read the history of the source and no role or member is denied either.
    """
    target = source
    if isinstance(source, discord.Thread):
        target = source.parent
    if target is None or isinstance(target, discord.Thread):
        return replies.only_you(channel_label(source))
    here = interaction.channel
    if here is not None and chain_channel_id(here) == str(target.id):
        return None
    return None if everyone_reads(target) else replies.only_you(channel_label(target))


def everyone_reads(channel: Any) -> bool:
    """True when every member can view a channel and read its history, as far as overwrites tell."""
    everyone = channel.permissions_for(channel.guild.default_role)
    if not (everyone.view_channel and everyone.read_message_history):
        return False
    return not any(
        overwrite.view_channel is False or overwrite.read_message_history is False
        for overwrite in channel.overwrites.values()
    )


async def reply(interaction: Interaction, content: str, *, ephemeral: bool = True, **kwargs: Any) -> None:
    """Answer an interaction whether or not it was answered already; never pings anyone."""
    kwargs.setdefault("allowed_mentions", NO_MENTIONS)
    if interaction.response.is_done():
        await interaction.followup.send(shown(content), ephemeral=ephemeral, **kwargs)
    else:
        await interaction.response.send_message(shown(content), ephemeral=ephemeral, **kwargs)


T = TypeVar("T")


async def in_time(interaction: Interaction, work: Awaitable[T], *, ephemeral: bool) -> T:
    """Await work; if it is not done within DEFER_SECONDS, defer the interaction (Discord shows the bot
    thinking) so that the answer may come later. Replies after a defer go where the defer put them."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=DEFER_SECONDS)
        if not done and not interaction.response.is_done():
            await interaction.response.defer(thinking=True, ephemeral=ephemeral)
        return await task
    finally:
        task.cancel()  # only when this was cancelled first: done work ignores it


async def answer_message(message: discord.Message, content: str) -> None:
    """Reply to a message (without pinging its author or anyone)."""
    await message.reply(shown(content), mention_author=False, allowed_mentions=NO_MENTIONS)


async def post(channel: Any, content: str) -> None:
    """Post in a channel; never pings anyone."""
    await channel.send(shown(content), allowed_mentions=NO_MENTIONS)


def is_manager(interaction: Interaction) -> bool:
    """True when the invoker has Manage Server (the permissions Discord resolved for this channel)."""
    return interaction.guild is not None and interaction.permissions.manage_guild


class OwnerView(discord.ui.View):
    """Buttons only the member who ran the command may press."""

    def __init__(self, owner_id: int, *, timeout: float | None) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id

    async def interaction_check(self, interaction: Interaction) -> bool:
        """Only the member who ran the command may answer."""
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            shown(replies.NOT_YOURS), ephemeral=True, allowed_mentions=NO_MENTIONS
        )
        return False

    async def close_with(self, interaction: Interaction, content: str) -> None:
        """Replace the message the buttons are on, dropping them."""
        await interaction.response.edit_message(
            content=shown(content), view=None, allowed_mentions=NO_MENTIONS
        )


class ConfirmView(OwnerView):
    """Confirm and Cancel buttons only the invoker may press; `result` is True, False or None (timeout)."""

    def __init__(
        self,
        owner_id: int,
        *,
        confirm_label: str = "Confirm",
        working: str = replies.WORKING,
        cancelled: str = replies.CANCELLED,
        timeout: float = CONFIRM_TIMEOUT,
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.result: bool | None = None
        self.working = working
        self.cancelled = cancelled
        self.confirm.label = confirm_label

    async def _finish(self, interaction: Interaction, result: bool) -> None:
        if self.is_finished():
            return
        self.result = result
        self.stop()
        await self.close_with(interaction, self.working if result else self.cancelled)

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
    if interaction.response.is_done():  # deferred (see in_time): the prompt takes the place of "thinking…"
        await interaction.edit_original_response(
            content=shown(prompt), view=view, allowed_mentions=NO_MENTIONS
        )
    else:
        await interaction.response.send_message(
            shown(prompt), view=view, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS
        )
    await view.wait()
    if view.result is None:
        await edit_reply(interaction, replies.TIMED_OUT)
    return view.result is True


async def confirmed(interaction: Interaction, work: Awaitable[T]) -> T | None:
    """Do what a confirmed prompt asked; when the database refuses it (busy, full), the prompt's
    "working" line becomes what to do, and None is returned (nothing changed)."""
    try:
        return await work
    except StoreError as exc:
        log.warning("a confirmed command changed nothing: %s", exc)
        await edit_reply(interaction, replies.not_saved(exc))
        return None


async def edit_reply(interaction: Interaction, content: str) -> None:
    """Replace the command's reply (and drop its buttons); log rather than raise when Discord refuses."""
    try:
        await interaction.edit_original_response(
            content=shown(content), view=None, allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException as exc:
        log.warning("could not edit a reply: %s", exc)


def describe_forbidden(error: discord.Forbidden, where: Any = None) -> str:
    """A clear sentence for a permission Discord refused."""
    place = f"in {channel_label(where)}" if where is not None else "here"
    return replies.missing_permission(place, error.text or "Forbidden")
