"""/markov generate and /markov stats."""

from __future__ import annotations

import asyncio
import io
import logging
import math
import random
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import replies
from bot.cooldowns import GENERATE, MAX_COUNT, STATS, Cooldowns
from bot.core import retention
from bot.core.brain import Brain
from bot.core.chart import alt_text, render_card
from bot.core.models import Generated
from bot.stats_text import figures
from cogs.common import (
    NO_MENTIONS,
    PLATFORM,
    ChainChannel,
    Interaction,
    chain_key,
    in_time,
    private_reason,
    refuse_channel,
    reply,
    shown,
)

if TYPE_CHECKING:
    from bot.discord_app import MarkovBot

log = logging.getLogger(__name__)

CARD_NAME = "markov-stats.png"


class Markov(commands.Cog):
    """Generating text from a channel's chain, and reporting what the chain keeps."""

    def __init__(self, brain: Brain, cooldowns: Cooldowns, rng: random.Random) -> None:
        self.brain = brain
        self.cooldowns = cooldowns
        self.rng = rng

    @app_commands.command(name="generate", description="New text in the style of a channel.")
    @app_commands.describe(
        start="Start from these words (they may land mid-sentence).",
        channel="Use this channel's chain instead of this one's (you must be able to read it).",
        member="Only what was learned from this member (they must have opted in).",
        count=f"How many messages, 1 to {MAX_COUNT}.",
    )
    async def generate(
        self,
        interaction: Interaction,
        start: app_commands.Range[str, 1, 200] | None = None,
        channel: ChainChannel | None = None,
        member: discord.Member | None = None,
        count: app_commands.Range[int, 1, MAX_COUNT] = 1,
    ) -> None:
        """Post up to `count` generated messages, or say plainly why there are none."""
        guild = interaction.guild
        if guild is None:
            await reply(interaction, replies.SERVER_ONLY)
            return
        source = channel or interaction.channel
        refusal = refuse_channel(interaction, source, posting=True)
        if refusal:
            await reply(interaction, refusal)
            return
        author: str | None = None
        if member is not None:
            if not await self.brain.is_opted_in(PLATFORM, str(guild.id), str(member.id)):
                await reply(interaction, replies.not_opted_in(member.display_name))
                return
            author = str(member.id)
        chain = chain_key(guild, source)
        who = member.display_name if member is not None else None
        refused = await self.brain.refusal(chain, start=start, author=author)
        if refused is not None:  # refused anyway: not a reason to wait
            await reply(interaction, replies.generated(Generated(refused), start=start, member=who))
            return
        if await self._cooling(interaction, guild.id, GENERATE):
            return
        private = private_reason(interaction, source)
        results = await in_time(
            interaction,
            self.brain.generate_many(chain, count, start=start, author=author, rng=self.rng),
            ephemeral=private is not None,
        )
        texts = [r.text for r in results if r.ok and r.text]
        if not texts:
            await reply(interaction, replies.generated(results[-1], start=start, member=who))
            return
        self.cooldowns.use(guild.id, interaction.user.id, GENERATE)  # only what was posted counts
        if private:
            await reply(interaction, private)
        for text in texts:
            await reply(interaction, text, ephemeral=private is not None)
        if not results[-1].ok:
            await reply(interaction, replies.generated(results[-1], start=start, member=who))

    async def _cooling(self, interaction: Interaction, guild: int, command: str) -> bool:
        """True (and the member told so) while the member's cooldown for this command runs."""
        wait = self.cooldowns.remaining(guild, interaction.user.id, command)
        if wait <= 0:
            return False
        await reply(interaction, replies.slow_down(command, math.ceil(wait), self.cooldowns.seconds))
        return True

    @app_commands.command(
        name="stats", description="How little of its source a channel's chain keeps, measured."
    )
    @app_commands.describe(
        channel="Report on this channel instead of this one (you must be able to read it)."
    )
    async def stats(self, interaction: Interaction, channel: ChainChannel | None = None) -> None:
        """The retention report: a plain-language summary, the figures and the card."""
        guild = interaction.guild
        if guild is None:
            await reply(interaction, replies.SERVER_ONLY)
            return
        source = channel or interaction.channel
        refusal = refuse_channel(interaction, source, posting=False)
        if refusal:
            await reply(interaction, refusal)
            return
        if await self._cooling(interaction, guild.id, STATS):
            return
        self.cooldowns.use(guild.id, interaction.user.id, STATS)
        private = private_reason(interaction, source)
        await interaction.response.defer(thinking=True, ephemeral=private is not None)
        report = await self.brain.stats(chain_key(guild, source))
        name = f"#{getattr(source, 'name', None) or 'channel'}"
        embed = stats_embed(report, name)
        extra: dict[str, Any] = {}
        if private:
            extra["content"] = shown(private)
        if report.messages_seen:
            png = await asyncio.to_thread(render_card, report, name)
            embed.set_image(url=f"attachment://{CARD_NAME}")
            alt = shown(alt_text(report, name))[:1024]
            extra["file"] = discord.File(io.BytesIO(png), filename=CARD_NAME, description=alt)
        await interaction.followup.send(
            embed=embed, ephemeral=private is not None, allowed_mentions=NO_MENTIONS, **extra
        )


VERDICT_COLOURS = {
    "replays": discord.Colour.red(),
    "some": discord.Colour.orange(),
    "little": discord.Colour.green(),
}


def stats_embed(report: retention.RetentionReport, name: str) -> discord.Embed:
    """The report as an embed: the summary, one field per figure, how bytes are measured."""
    embed = discord.Embed(
        title=shown(f"What the chain of {name} keeps")[:256],
        description=shown(retention.summary(report))[:4096],
        colour=VERDICT_COLOURS[report.verdict] if report.messages_seen else discord.Colour.light_grey(),
    )
    if report.messages_seen:
        for label, value in figures(report):
            embed.add_field(name=label, value=shown(value)[:1024], inline=False)
    embed.set_footer(text=f"Bytes measured as {retention.BYTES_METHOD}"[:2048])
    return embed


async def setup(bot: MarkovBot) -> None:
    """Load the cog with the bot's brain, cooldowns and random source."""
    await bot.add_markov_cog(Markov(bot.brain, bot.cooldowns, bot.rng))
