"""The listeners: learn messages, unlearn deleted ones, relearn edited ones, answer mentions, chime in.

Deletes and edits are honoured by message id, also after a restart: the Brain keeps each
message learned within the edit window (MARKOV_EDIT_WINDOW_DAYS) as token ids. Older messages
are unlearned only when discord.py still has their text cached.
"""

from __future__ import annotations

import logging
import random
import re
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from bot import replies
from bot.cooldowns import GENERATE, Cooldowns
from bot.core.brain import Brain
from bot.core.models import ChainKey, Generated, GenerateStatus
from bot.core.schema import StoreError
from cogs.common import (
    LEARNED_TYPES,
    PLATFORM,
    answer_message,
    chain_key,
    core_message,
    is_learnable,
    post,
)

if TYPE_CHECKING:
    from bot.discord_app import MarkovBot

log = logging.getLogger(__name__)

MENTION = re.compile(r"<(?:@[!&]?|#)\d+>")
WORD = re.compile(r"\w[\w'’-]*")
MAX_SEED_WORDS = 12


def seed_words(content: str, rng: random.Random) -> list[str]:
    """The distinct words of a mention (mention markup removed), in random order."""
    words = list(dict.fromkeys(WORD.findall(MENTION.sub(" ", content))))
    rng.shuffle(words)
    return words[:MAX_SEED_WORDS]


class Learning(commands.Cog):
    """Keeps the chains in step with the channels, and talks when spoken to."""

    def __init__(self, brain: Brain, cooldowns: Cooldowns, rng: random.Random) -> None:
        self.brain = brain
        self.cooldowns = cooldowns
        self.rng = rng

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Learn a member's message; answer a mention or chime in when the server wants that."""
        guild = message.guild
        if (
            guild is None
            or message.author.bot
            or message.webhook_id is not None
            or message.type not in LEARNED_TYPES
        ):
            return
        addressed = guild.me is not None and guild.me.id in message.raw_mentions
        core = core_message(message)
        if core is None:
            return
        if is_learnable(message):
            try:
                result = await self.brain.learn(core)
                log.debug("message %s: %s", message.id, result.status.value)
            except StoreError as exc:  # it waited its turn in vain (the database stayed busy or full)
                log.warning("could not learn message %s: %s", message.id, exc)
        settings = await self.brain.settings(PLATFORM, str(guild.id))
        if addressed:
            if settings.reply_on_mention:
                await self._answer(message)
        elif (
            settings.chime_chance > 0
            and await self.brain.is_enabled(PLATFORM, core.guild, core.channel)
            and self.rng.random() < settings.chime_chance
        ):
            await self._chime(message)

    async def _answer(self, message: discord.Message) -> None:
        """Reply to a mention, starting from a word of it the chain knows (else from anywhere)."""
        assert message.guild is not None
        if self.cooldowns.remaining(message.guild.id, message.author.id, GENERATE) > 0:
            return
        self.cooldowns.use(message.guild.id, message.author.id, GENERATE)
        chain = chain_key(message.guild, message.channel)
        result = await self._seeded(chain, seed_words(message.content, self.rng))
        text = result.text if result.ok and result.text else replies.generated(result)
        try:
            await answer_message(message, text)
        except discord.Forbidden as exc:
            log.warning(
                "cannot answer a mention in guild %s, channel %s: %s",
                message.guild.id,
                message.channel.id,
                exc.text,
            )
        except discord.HTTPException as exc:
            log.warning("could not answer a mention in channel %s: %s", message.channel.id, exc)

    async def _seeded(self, chain: ChainKey, words: list[str]) -> Generated:
        for word in words:
            result = await self.brain.generate(chain, start=word, rng=self.rng)
            if result.status is not GenerateStatus.UNKNOWN_START:
                return result
        return await self.brain.generate(chain, rng=self.rng)

    async def _chime(self, message: discord.Message) -> None:
        """Join the conversation unprompted (only with something new to say)."""
        assert message.guild is not None
        result = await self.brain.generate(chain_key(message.guild, message.channel), rng=self.rng)
        if not (result.ok and result.text):
            return
        try:
            await post(message.channel, result.text)
        except discord.Forbidden as exc:
            log.warning(
                "cannot chime in in guild %s, channel %s: %s", message.guild.id, message.channel.id, exc.text
            )
        except discord.HTTPException as exc:
            log.warning("could not chime in in channel %s: %s", message.channel.id, exc)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        """Unlearn the old version (from the cached text, else by id) and learn the new one."""
        after = payload.message
        before = payload.cached_message
        if after.guild is None or after.author.bot or after.webhook_id is not None:
            return
        if before is not None and before.content == after.content:
            return  # an embed or a pin, not an edit of the text
        old = core_message(before) if before is not None else None
        new = core_message(after)
        if new is None or not is_learnable(after):  # edited into words addressed to me: only unlearn
            await self._unlearn(after.id, before)
            return
        try:
            result = await self.brain.edit(old, new)
        except StoreError as exc:  # it waited its turn in vain (the database stayed busy or full)
            log.warning(
                "could not apply the edit of message %s, so its old version is still learned: %s",
                after.id,
                exc,
            )
            return
        log.debug("edited message %s: %s", after.id, result.status.value)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        """Unlearn a deleted message."""
        await self._unlearn(payload.message_id, payload.cached_message)

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        """Unlearn each deleted message."""
        cached = {message.id: message for message in payload.cached_messages}
        for message_id in sorted(payload.message_ids | set(cached)):
            await self._unlearn(message_id, cached.get(message_id))

    async def _unlearn(self, message_id: int, cached: discord.Message | None) -> None:
        """Unlearn by id; a message learned before the edit window only when its text is cached."""
        try:
            core = core_message(cached) if cached is not None else None
            status = await self.brain.delete(PLATFORM, str(message_id), core)
        except StoreError as exc:  # it waited its turn in vain (the database stayed busy or full)
            log.warning("could not unlearn deleted message %s, so it is still learned: %s", message_id, exc)
            return
        log.debug("deleted message %s: %s", message_id, status.value)


async def setup(bot: MarkovBot) -> None:
    """Load the listeners with the bot's brain, cooldowns and random source."""
    await bot.add_markov_cog(Learning(bot.brain, bot.cooldowns, bot.rng))
