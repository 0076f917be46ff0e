"""/markov generate and /markov stats."""

from __future__ import annotations

import asyncio
import io
import logging
import math
import random
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import replies
from bot.core import retention
from bot.core.brain import Brain
from bot.core.chart import render_card
from bot.core.models import ChainKey, Generated
from bot.stats_text import figures
from cogs.common import (
    NO_MENTIONS,
    PLATFORM,
    ChainChannel,
    Cooldowns,
    Interaction,
    chain_key,
    refuse_channel,
    reply,
)

if TYPE_CHECKING:
    from bot.discord_app import MarkovBot

log = logging.getLogger(__name__)

MAX_COUNT = 5
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
        count="How many messages, 1 to 5.",
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
            await reply(interaction, "This command only works in a server.")
            return
        wait = self.cooldowns.remaining(guild.id, interaction.user.id)
        if wait > 0:
            await reply(interaction, f"Slow down: you can generate again in {math.ceil(wait)} s.")
            return
        source = channel or interaction.channel
        refusal = refuse_channel(interaction, source, posting=True)
        if refusal:
            await reply(interaction, refusal)
            return
        author: str | None = None
        if member is not None:
            if not await self.brain.is_opted_in(PLATFORM, str(guild.id), str(member.id)):
                await reply(
                    interaction,
                    f"{member.mention} hasn't opted in, so I won't imitate them. "
                    "Members opt in with `/markov optin`.",
                )
                return
            author = str(member.id)
        chain = chain_key(guild, source)
        results = await self._generate(chain, start, author, count)
        texts = [r.text for r in results if r.ok and r.text]
        who = member.display_name if member is not None else None
        if not texts:
            await reply(interaction, replies.generated(results[-1], start=start, member=who))
            return
        self.cooldowns.use(guild.id, interaction.user.id)  # only what was posted counts
        for text in texts:
            await reply(interaction, text, ephemeral=False)
        if not results[-1].ok:
            await reply(interaction, replies.generated(results[-1], start=start, member=who))

    async def _generate(
        self, chain: ChainKey, start: str | None, author: str | None, count: int
    ) -> list[Generated]:
        results: list[Generated] = []
        for _ in range(count):
            result = await self.brain.generate(chain, start=start, author=author, rng=self.rng)
            results.append(result)
            if not result.ok:
                break
        return results

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
            await reply(interaction, "This command only works in a server.")
            return
        source = channel or interaction.channel
        refusal = refuse_channel(interaction, source, posting=False)
        if refusal:
            await reply(interaction, refusal)
            return
        await interaction.response.defer(thinking=True)
        report = await self.brain.stats(chain_key(guild, source))
        name = f"#{getattr(source, 'name', None) or 'channel'}"
        embed = stats_embed(report, name)
        if report.messages_seen:
            png = await asyncio.to_thread(render_card, report, name)
            embed.set_image(url=f"attachment://{CARD_NAME}")
            card = discord.File(io.BytesIO(png), filename=CARD_NAME)
            await interaction.followup.send(embed=embed, file=card, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.followup.send(embed=embed, allowed_mentions=NO_MENTIONS)


def stats_embed(report: retention.RetentionReport, name: str) -> discord.Embed:
    """The report as an embed: the summary, one field per figure, how bytes are measured."""
    embed = discord.Embed(
        title=f"What the chain of {name} keeps",
        description=retention.summary(report)[:4096],
        colour=discord.Colour.red() if report.replays_source else discord.Colour.green(),
    )
    if report.messages_seen:
        for label, value in figures(report):
            embed.add_field(name=label, value=value[:1024], inline=False)
    embed.set_footer(text=f"Bytes measured as {retention.BYTES_METHOD}"[:2048])
    return embed


async def setup(bot: MarkovBot) -> None:
    """Load the cog with the bot's brain, cooldowns and random source."""
    await bot.add_markov_cog(Markov(bot.brain, bot.cooldowns, bot.rng))
