"""A local terminal "channel": every line typed is learned; `/markov ...` lines are commands."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from pathlib import Path
from typing import TextIO

from bot import replies
from bot.core.brain import Brain
from bot.core.models import Message
from bot.stats_text import stats_reply
from bot.textcommands import Context, TextCommands

log = logging.getLogger(__name__)

PLATFORM = "local"
GUILD = "local"
AUTHOR = "console-user"

BANNER = """markovbot console — channel {channel!r} in {db}
Type messages to teach me; commands start with /markov (try /markov help). /quit or Ctrl-D leaves."""


class Console:
    """Reads lines from a stream, learns them, and answers /markov commands."""

    def __init__(
        self,
        brain: Brain,
        channel: str,
        *,
        out: TextIO = sys.stdout,
        card_dir: Path = Path("data"),
        rng: random.Random | None = None,
    ) -> None:
        self.brain = brain
        self.channel = channel
        self.out = out
        self.card_dir = card_dir
        self.commands = TextCommands(brain, prefix="/markov", stats=stats_reply, rng=rng)
        self.context = Context(PLATFORM, GUILD, channel, AUTHOR, is_moderator=True)
        self._counter = 0

    async def setup(self) -> None:
        """The console user consents and the console channel learns."""
        await self.brain.opt_in(PLATFORM, GUILD, AUTHOR)
        await self.brain.set_channel(PLATFORM, GUILD, self.channel, True)

    def say(self, text: str) -> None:
        """Print a reply, rendered as every front end's replies are (bot.replies.render)."""
        print(replies.render(text, replies.CONSOLE), file=self.out, flush=True)

    async def handle(self, line: str) -> bool:
        """Handle one line; False when the user asked to leave."""
        line = line.strip()
        if not line:
            return True
        if line in {"/quit", "/exit"}:
            return False
        if line.startswith("/") and not self.commands.is_command(line):
            self.say(replies.unknown_console_command(line.split(maxsplit=1)[0]))
            return True
        if self.commands.is_command(line):
            await self.brain.settle()
            for reply in await self.commands.handle(self.context, line):
                self.say(reply.text)
                if reply.image:
                    self.card_dir.mkdir(parents=True, exist_ok=True)
                    path = self.card_dir / f"stats-{self.channel}.png"
                    path.write_bytes(reply.image)
                    self.say(f"(stats card written to {path})")
            return True
        self._counter += 1
        message_id = f"console-{time.time_ns()}-{self._counter}"
        result = await self.brain.learn(Message(PLATFORM, GUILD, self.channel, AUTHOR, message_id, line))
        if not result.queued:
            self.say(replies.not_learned(result.status, self.brain.max_message_chars))
        return True

    async def run(self, stream: TextIO = sys.stdin) -> None:
        """Read lines until EOF or /quit."""
        await self.setup()
        interactive = stream.isatty()
        while True:
            if interactive:
                print("> ", end="", file=self.out, flush=True)
            line = await asyncio.to_thread(stream.readline)
            if not line or not await self.handle(line):
                break
