"""Text commands (`/markov generate`, `!markov stats`, ...) for adapters without slash commands.

The console and the Matrix adapter parse a line here and get plain replies back; the platform
only decides who is a moderator and how a reply is sent.
"""

from __future__ import annotations

import logging
import random
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import replies
from bot.core.brain import Brain
from bot.core.models import ChainKey, GuildSettings

log = logging.getLogger(__name__)

MAX_COUNT = 5

HELP = """Commands:
  {p} generate [start words] [count:N]   new text in this channel's style (N from 1 to {max})
  {p} stats                              how little of the source this channel's chain keeps
  {p} optin | optout                      let me learn from you here, or stop
  {p} me                                  what I hold about you here
  {p} forget [confirm]                    remove everything learned from you here
  {p} channel enable|disable              (moderators) learn in this channel, or stop
  {p} settings [name value]               (moderators) show or change a setting
  {p} help                                this text"""


@dataclass(frozen=True)
class Context:
    """Where a text command was typed, and by whom."""

    platform: str
    guild: str
    channel: str
    author: str
    is_moderator: bool = False


@dataclass
class Reply:
    """A reply: text, and optionally an image (PNG bytes) to attach."""

    text: str
    image: bytes | None = None
    image_name: str = "markov-stats.png"


StatsRenderer = Callable[[Brain, ChainKey], Awaitable[Reply]]


class TextCommands:
    """Parses and answers text commands over a Brain."""

    def __init__(
        self,
        brain: Brain,
        *,
        prefix: str,
        stats: StatsRenderer,
        rng: random.Random | None = None,
    ) -> None:
        self.brain = brain
        self.prefix = prefix
        self.stats = stats
        self.rng = rng or random.Random()

    def is_command(self, line: str) -> bool:
        """True when the line is addressed to the bot."""
        first = line.strip().split(maxsplit=1)[:1]
        return first == [self.prefix]

    async def handle(self, ctx: Context, line: str) -> list[Reply]:
        """Answer one command line."""
        try:
            words = shlex.split(line.strip())
        except ValueError:
            words = line.strip().split()
        args = words[1:]
        if not args or args[0] in {"help", "-h", "--help"}:
            return [Reply(HELP.format(p=self.prefix, max=MAX_COUNT))]
        command, rest = args[0].lower(), args[1:]
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            return [Reply(f"Unknown command {command!r}. Try `{self.prefix} help`.")]
        result: list[Reply] = await handler(ctx, rest)
        return result

    async def _cmd_generate(self, ctx: Context, rest: list[str]) -> list[Reply]:
        count = 1
        words: list[str] = []
        for word in rest:
            if word.lower().startswith("count:"):
                value = word.split(":", 1)[1]
                if not value.isdigit() or not 1 <= int(value) <= MAX_COUNT:
                    return [Reply(f"count must be a whole number from 1 to {MAX_COUNT}.")]
                count = int(value)
            elif word.lower().startswith("start:"):
                words.append(word.split(":", 1)[1])
            else:
                words.append(word)
        start = " ".join(words) or None
        chain = ChainKey(ctx.platform, ctx.guild, ctx.channel)
        out = []
        for _ in range(count):
            result = await self.brain.generate(chain, start=start, rng=self.rng)
            out.append(replies.generated(result, start=start))
            if not result.ok:
                break
        return [Reply(text) for text in out]

    async def _cmd_stats(self, ctx: Context, rest: list[str]) -> list[Reply]:
        await self.brain.flush()
        return [await self.stats(self.brain, ChainKey(ctx.platform, ctx.guild, ctx.channel))]

    async def _cmd_optin(self, ctx: Context, rest: list[str]) -> list[Reply]:
        changed = await self.brain.opt_in(ctx.platform, ctx.guild, ctx.author)
        return [Reply(replies.OPTED_IN if changed else replies.ALREADY_OPTED_IN)]

    async def _cmd_optout(self, ctx: Context, rest: list[str]) -> list[Reply]:
        changed = await self.brain.opt_out(ctx.platform, ctx.guild, ctx.author)
        return [Reply(replies.OPTED_OUT if changed else replies.NOT_OPTED_IN)]

    async def _cmd_me(self, ctx: Context, rest: list[str]) -> list[Reply]:
        await self.brain.flush()
        return [Reply(replies.member(await self.brain.member_info(ctx.platform, ctx.guild, ctx.author)))]

    async def _cmd_forget(self, ctx: Context, rest: list[str]) -> list[Reply]:
        if rest != ["confirm"]:
            info = await self.brain.member_info(ctx.platform, ctx.guild, ctx.author)
            return [
                Reply(
                    f"This removes all {info.messages:,} of your learned messages in this server and "
                    f"opts you out. To go ahead, send `{self.prefix} forget confirm`."
                )
            ]
        return [Reply(replies.forgot(await self.brain.forget(ctx.platform, ctx.guild, ctx.author)))]

    async def _cmd_channel(self, ctx: Context, rest: list[str]) -> list[Reply]:
        if not ctx.is_moderator:
            return [Reply("Only moderators can enable or disable learning in a channel.")]
        if rest not in (["enable"], ["disable"]):
            return [Reply(f"Usage: `{self.prefix} channel enable` or `{self.prefix} channel disable`.")]
        enable = rest[0] == "enable"
        changed = await self.brain.set_channel(ctx.platform, ctx.guild, ctx.channel, enable)
        state = "enabled" if enable else "disabled"
        if not changed:
            return [Reply(f"Learning was already {state} here.")]
        note = " Only members who opted in are learned." if enable else " What was learned stays."
        return [Reply(f"Learning is now {state} in this channel.{note}")]

    async def _cmd_settings(self, ctx: Context, rest: list[str]) -> list[Reply]:
        current = await self.brain.settings(ctx.platform, ctx.guild)
        if not rest:
            return [Reply(describe_settings(current))]
        if not ctx.is_moderator:
            return [Reply("Only moderators can change settings.")]
        if len(rest) != 2:
            return [
                Reply(f"Usage: `{self.prefix} settings NAME VALUE`, NAME one of {', '.join(SETTING_NAMES)}.")
            ]
        name, raw = rest[0].lower().replace("-", "_"), rest[1]
        try:
            updated = await self.brain.update_settings(
                ctx.platform, ctx.guild, **{name: parse_setting(name, raw)}
            )
        except ValueError as exc:
            return [Reply(f"Not changed: {exc}")]
        return [Reply("Saved.\n" + describe_settings(updated))]


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
        raise ValueError(f"unknown setting {name!r}; settings are {', '.join(SETTING_NAMES)}.")
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


def describe_settings(s: GuildSettings) -> str:
    """A settings listing a person can read."""
    return (
        f"order (for new chains): {s.order}\n"
        f"reply_on_mention: {'on' if s.reply_on_mention else 'off'}\n"
        f"chime_chance: {s.chime_chance:g}\n"
        f"run_length (copy guard K, for new chains): {s.run_length}\n"
        f"copy_guard: {'on' if s.copy_guard else 'off'}"
    )
