"""Text commands (`/markov generate`, `!markov stats`, ...) for adapters without slash commands.

The console and the Matrix adapter parse a line here and get plain replies back; the platform
only decides who is a moderator and how a reply is sent.
"""

from __future__ import annotations

import logging
import math
import random
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import replies
from bot.cooldowns import GENERATE, MAX_COUNT, STATS, Cooldowns
from bot.core.brain import Brain
from bot.core.models import ChainKey, GuildSettings
from bot.core.schema import StoreError
from bot.replies import describe_settings

log = logging.getLogger(__name__)

__all__ = ["MAX_COUNT", "Context", "Reply", "TextCommands", "describe_settings", "parse_setting"]


# Commands whose answer changes nothing (a cooldown aside): what they say does not depend on the
# order in which they and the messages after them are handled.
HELP_WORDS = frozenset({"help", "-h", "--help"})
ANSWERS_ONLY = HELP_WORDS | {"generate", "stats", "me"}


def _args(line: str) -> list[str]:
    """A command line's words after the prefix, quoted as a shell would (else split at spaces)."""
    try:
        words = shlex.split(line.strip())
    except ValueError:
        words = line.strip().split()
    return words[1:]


def _handler(command: str) -> str:
    """The name of the method that answers a command ("" for what cannot be one)."""
    name = command.lower()
    return f"_cmd_{name}" if name.isidentifier() else ""


@dataclass(frozen=True)
class Context:
    """Where a text command was typed, and by whom."""

    platform: str
    guild: str
    channel: str
    author: str
    is_moderator: bool = False
    channel_name: str | None = None  # how people know the channel (a room's name), for the stats card


@dataclass
class Reply:
    """A reply: text, and optionally an image (PNG bytes) to attach."""

    text: str
    image: bytes | None = None
    image_name: str = "markov-stats.png"
    image_alt: str = ""  # what the image says, for screen readers


StatsRenderer = Callable[[Brain, ChainKey, str], Awaitable[Reply]]


class TextCommands:
    """Parses and answers text commands over a Brain; generate and stats have a per-member cooldown."""

    def __init__(
        self,
        brain: Brain,
        *,
        prefix: str,
        stats: StatsRenderer,
        rng: random.Random | None = None,
        cooldowns: Cooldowns | None = None,
    ) -> None:
        self.brain = brain
        self.prefix = prefix
        self.stats = stats
        self.rng = rng or random.Random()
        self.cooldowns = cooldowns or Cooldowns(0)

    def is_command(self, line: str) -> bool:
        """True when the line is addressed to the bot."""
        first = line.strip().split(maxsplit=1)[:1]
        return first == [self.prefix]

    def answers_only(self, line: str) -> bool:
        """True when answering the command line changes nothing (no consent, setting or chain): a
        front end may answer it beside what comes after it, not before."""
        args = _args(line)
        return not args or args[0].lower() in ANSWERS_ONLY or not hasattr(self, _handler(args[0]))

    async def handle(self, ctx: Context, line: str) -> list[Reply]:
        """Answer one command line (an empty list: nothing to say)."""
        args = _args(line)
        if not args or args[0] in HELP_WORDS:
            return [Reply(replies.HELP)]
        command, rest = args[0].lower(), args[1:]
        handler = getattr(self, _handler(command), None)
        if handler is None:
            return [Reply(replies.unknown_command(args[0]))]
        try:
            result: list[Reply] = await handler(ctx, rest)
        except StoreError as exc:  # busy, full: the member is told, the admin gets a line
            log.warning("%s %s changed nothing: %s", self.prefix, command, exc)
            return [Reply(replies.not_saved(exc))]
        return result

    def _cooling(self, ctx: Context, command: str) -> list[Reply] | None:
        """None when the member may go on; else the reply (said once per cooldown, then silence)."""
        wait = self.cooldowns.remaining((ctx.platform, ctx.guild), ctx.author, command)
        if wait <= 0:
            return None
        if not self.cooldowns.first_warning((ctx.platform, ctx.guild), ctx.author, command):
            return []
        return [Reply(replies.slow_down(command, math.ceil(wait), self.cooldowns.seconds))]

    async def _cmd_generate(self, ctx: Context, rest: list[str]) -> list[Reply]:
        count = 1
        words: list[str] = []
        for word in rest:
            if word.lower().startswith("count:"):
                value = word.split(":", 1)[1]
                if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
                    return [Reply(replies.COUNT_RANGE)]
                count = int(value)
            elif word.lower().startswith("start:"):
                words.append(word.split(":", 1)[1])
            else:
                words.append(word)
        cooling = self._cooling(ctx, GENERATE)
        if cooling is not None:
            return cooling
        start = " ".join(words) or None
        chain = ChainKey(ctx.platform, ctx.guild, ctx.channel)
        results = await self.brain.generate_many(chain, count, start=start, rng=self.rng)
        if results[0].ok:
            self.cooldowns.use((ctx.platform, ctx.guild), ctx.author, GENERATE)
        return [Reply(replies.generated(result, start=start)) for result in results]

    async def _cmd_stats(self, ctx: Context, rest: list[str]) -> list[Reply]:
        cooling = self._cooling(ctx, STATS)
        if cooling is not None:
            return cooling
        self.cooldowns.use((ctx.platform, ctx.guild), ctx.author, STATS)
        chain = ChainKey(ctx.platform, ctx.guild, ctx.channel)
        return [await self.stats(self.brain, chain, ctx.channel_name or f"#{ctx.channel}")]

    async def _cmd_optin(self, ctx: Context, rest: list[str]) -> list[Reply]:
        changed = await self.brain.opt_in(ctx.platform, ctx.guild, ctx.author)
        return [Reply(replies.OPTED_IN if changed else replies.ALREADY_OPTED_IN)]

    async def _cmd_optout(self, ctx: Context, rest: list[str]) -> list[Reply]:
        changed = await self.brain.opt_out(ctx.platform, ctx.guild, ctx.author)
        return [Reply(replies.OPTED_OUT if changed else replies.NOT_OPTED_IN)]

    async def _cmd_me(self, ctx: Context, rest: list[str]) -> list[Reply]:
        await self.brain.settle()
        return [Reply(replies.member(await self.brain.member_info(ctx.platform, ctx.guild, ctx.author)))]

    async def _cmd_forget(self, ctx: Context, rest: list[str]) -> list[Reply]:
        if rest != ["confirm"]:
            info = await self.brain.member_info(ctx.platform, ctx.guild, ctx.author)
            return [Reply(replies.forget_prompt(info.messages, buttons=False))]
        return [Reply(replies.forgot(await self.brain.forget(ctx.platform, ctx.guild, ctx.author)))]

    async def _cmd_channel(self, ctx: Context, rest: list[str]) -> list[Reply]:
        if not ctx.is_moderator:
            return [Reply(replies.MODERATOR_ONLY)]
        if rest not in (["enable"], ["disable"]):
            return [Reply(replies.CHANNEL_USAGE)]
        enable = rest[0] == "enable"
        changed = await self.brain.set_channel(ctx.platform, ctx.guild, ctx.channel, enable)
        return [
            Reply(replies.channel_learning("this channel", enable=enable, changed=changed, can_reset=False))
        ]

    async def _cmd_settings(self, ctx: Context, rest: list[str]) -> list[Reply]:
        current = await self.brain.settings(ctx.platform, ctx.guild)
        if not rest:
            return [Reply(describe_settings(current))]
        if not ctx.is_moderator:
            return [Reply(replies.MODERATOR_ONLY)]
        if len(rest) != 2:
            return [Reply(replies.settings_usage(SETTING_NAMES))]
        name, raw = rest[0].lower().replace("-", "_"), rest[1]
        try:
            updated = await self.brain.update_settings(
                ctx.platform, ctx.guild, **{name: parse_setting(name, raw)}
            )
        except ValueError as exc:
            return [Reply(replies.not_changed(str(exc)))]
        return [Reply(f"{replies.SETTINGS_SAVED}\n{describe_settings(updated)}")]


SETTING_NAMES = GuildSettings.names()


def parse_setting(name: str, raw: str) -> object:
    """Convert a setting's text value to its type; ValueError with a clear message otherwise."""
    kinds = {
        "order": int,
        "run_length": int,
        "chime_chance": float,
        "reply_on_mention": bool,
        "copy_guard": bool,
    }
    if name not in kinds:
        raise ValueError(replies.unknown_setting(name, SETTING_NAMES))
    kind = kinds[name]
    if kind is bool:
        if raw.lower() in {"on", "true", "yes", "1"}:
            return True
        if raw.lower() in {"off", "false", "no", "0"}:
            return False
        raise ValueError(f"{name} must be on or off.")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a {'whole number' if kind is int else 'number'}.") from None
