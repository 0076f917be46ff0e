"""/markov optin, optout, me and forget: each member's consent and data."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from discord import app_commands
from discord.ext import commands

from bot import replies
from bot.core.brain import Brain
from bot.core.models import MemberInfo
from cogs.common import (
    CONFIRM_TIMEOUT,
    PLATFORM,
    ConfirmView,
    Interaction,
    confirm,
    confirmed,
    edit_reply,
    in_time,
    reply,
)

if TYPE_CHECKING:
    from bot.discord_app import MarkovBot

log = logging.getLogger(__name__)


class Consent(commands.Cog):
    """Opting in and out, what the bot holds about you, and forgetting it."""

    def __init__(self, brain: Brain, *, confirm_timeout: float = CONFIRM_TIMEOUT) -> None:
        self.brain = brain
        self.confirm_timeout = confirm_timeout

    @app_commands.command(name="optin", description="Let me learn from your messages in this server.")
    async def optin(self, interaction: Interaction) -> None:
        """Opt the invoker in, in this server."""
        await self._consent(interaction, self.brain.opt_in, replies.OPTED_IN, replies.ALREADY_OPTED_IN)

    @app_commands.command(name="optout", description="Stop learning from your messages in this server.")
    async def optout(self, interaction: Interaction) -> None:
        """Opt the invoker out, at once."""
        await self._consent(interaction, self.brain.opt_out, replies.OPTED_OUT, replies.NOT_OPTED_IN)

    async def _consent(
        self,
        interaction: Interaction,
        change: Callable[[str, str, str], Awaitable[bool]],
        changed_reply: str,
        unchanged_reply: str,
    ) -> None:
        """Change the invoker's consent in this server; say whether it changed."""
        if interaction.guild_id is None:
            await reply(interaction, replies.SERVER_ONLY)
            return
        member = str(interaction.guild_id), str(interaction.user.id)
        changed = await in_time(interaction, change(PLATFORM, *member), ephemeral=True)
        await reply(interaction, changed_reply if changed else unchanged_reply)

    @app_commands.command(name="me", description="Am I opted in, and how much of mine did you learn here?")
    async def me(self, interaction: Interaction) -> None:
        """What the bot holds about the invoker in this server."""
        if interaction.guild_id is None:
            await reply(interaction, replies.SERVER_ONLY)
            return
        info = await in_time(interaction, self._learned(interaction), ephemeral=True)
        await reply(interaction, replies.member(info))

    @app_commands.command(name="forget", description="Remove everything learned from you in this server.")
    async def forget(self, interaction: Interaction) -> None:
        """After a confirmation, remove every contribution of the invoker here and opt them out."""
        if interaction.guild_id is None:
            await reply(interaction, replies.SERVER_ONLY)
            return
        guild, member = str(interaction.guild_id), str(interaction.user.id)
        info = await in_time(interaction, self._learned(interaction), ephemeral=True)
        prompt = replies.forget_prompt(info.messages, buttons=True)
        view = ConfirmView(
            interaction.user.id,
            confirm_label="Forget me",
            working="Forgetting…",
            cancelled=replies.FORGET_CANCELLED,
            timeout=self.confirm_timeout,
        )
        if not await confirm(interaction, prompt, view, ephemeral=True):
            return
        result = await confirmed(interaction, self.brain.forget(PLATFORM, guild, member))
        if result is not None:
            await edit_reply(interaction, replies.forgot(result))

    async def _learned(self, interaction: Interaction) -> MemberInfo:
        """What is learned from the invoker here, what was queued included (committed first, when the file can be written)."""
        await self.brain.settle()
        return await self.brain.member_info(PLATFORM, str(interaction.guild_id), str(interaction.user.id))


async def setup(bot: MarkovBot) -> None:
    """Load the cog with the bot's brain."""
    await bot.add_markov_cog(Consent(bot.brain))
