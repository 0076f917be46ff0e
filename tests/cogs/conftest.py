"""SimCord fixtures: the real MarkovBot over a real Brain (SQLite in tmp_path), in a simulated Discord."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
import simcord

from bot.config import Settings
from bot.core import schema
from bot.core.brain import Brain
from bot.core.models import ChainKey
from bot.core.schema import DatabaseBusy
from bot.discord_app import MarkovBot

#: A small corpus whose sentences share words, so a chain of order 1 can say something new.
SUBJECTS = ["the cat", "the dog", "a bird", "my neighbour", "the old fox"]
VERBS = ["sat on", "ran past", "looked at", "jumped over", "slept near"]
OBJECTS = ["the mat", "the log", "a fence", "the river", "the red barn"]


def corpus(
    n: int = 25,
    subjects: Sequence[str] = SUBJECTS,
    verbs: Sequence[str] = VERBS,
    objects: Sequence[str] = OBJECTS,
    end: str = "today",
) -> list[str]:
    """n distinct sentences from a fixed vocabulary (five of each part)."""
    out = []
    for i in range(n):
        s, v, o = subjects[i % 5], verbs[(i // 5) % 5], objects[(i * 3 + i // 5) % 5]
        out.append(f"{s} {v} {o} {end}")
    return out


VOCABULARY = {word for line in corpus(25) for word in line.split()}


_SETTLE = simcord.Env._settle_internal


#: How long SimCord waits for the bot to settle after an action: a stats report with its chart, on a
#: loaded machine running tests in parallel, took more than SimCord's default of 5 s.
SETTLE_TIMEOUT = 30.0
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every SimCord test here SETTLE_TIMEOUT (unless it sets its own simcord options)."""
    for item in items:
        if HERE in item.path.parents and item.get_closest_marker("simcord") is None:
            item.add_marker(pytest.mark.simcord(settle_timeout=SETTLE_TIMEOUT))


@pytest.fixture(autouse=True)
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll for settled work every millisecond instead of every 50 ms.

    Each database call the bot makes runs on aiosqlite's thread, and SimCord's settle loop
    polls such native work every `idle` seconds (0.05 by default, not configurable per actor
    verb). Settling is still decided by SimCord's own idleness checks; only the polling
    interval changes, which makes the suite about 15 times faster.
    """

    async def settle(self: simcord.Env, **kwargs: Any) -> None:
        kwargs["idle"] = min(kwargs.get("idle", 0.05), 0.001)
        await _SETTLE(self, **kwargs)

    monkeypatch.setattr(simcord.Env, "_settle_internal", settle)


@pytest.fixture
def impatient(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database held by another process is given up on after 0.1 s, not 5 (ask for it before world)."""
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_MS", 100)


@pytest.fixture
def settings(db_path: Path) -> Settings:
    """Settings for the bot under test (a 5 s generate cooldown)."""
    return Settings(db_path=db_path, cooldown_seconds=5.0)


@pytest.fixture
def simcord_bot(brain: Brain, settings: Settings) -> MarkovBot:
    """The bot SimCord runs: real cogs, real Brain, seeded randomness."""
    return MarkovBot(brain, settings, rng=random.Random(7))


@dataclass
class World:
    """One server: #general, an admin, two members, and the bot; helpers to arrange and inspect."""

    env: simcord.Env
    bot: MarkovBot
    brain: Brain
    guild: simcord.GuildHandle
    general: simcord.ChannelHandle
    admin: simcord.MemberActor
    alice: simcord.MemberActor
    bob: simcord.MemberActor

    @property
    def gid(self) -> str:
        """The guild id as the core sees it."""
        return str(self.guild.id)

    def chain(self, channel: simcord.ChannelHandle | None = None) -> ChainKey:
        """The chain key of a channel."""
        return ChainKey("discord", self.gid, str((channel or self.general).id))

    async def enable(self, channel: simcord.ChannelHandle | None = None) -> None:
        """Enable learning in a channel, the way a moderator does."""
        result = await self.admin.slash(channel or self.general, "markov channel enable")
        assert "now enabled" in result.response.content

    async def teach(
        self,
        lines: Sequence[str],
        *,
        member: simcord.MemberActor | None = None,
        channel: simcord.ChannelHandle | None = None,
    ) -> list[discord.Message]:
        """Have a member post lines; flush the learning queue."""
        member = member or self.alice
        sent = [await member.send(channel or self.general, line) for line in lines]
        await self.brain.flush()
        return sent

    async def learned(self, message: Any) -> bool:
        """True when a message id was learned."""
        await self.brain.flush()
        return await self.brain.is_learned("discord", str(message.id))

    async def messages_seen(self, channel: simcord.ChannelHandle | None = None) -> int:
        """How many messages a channel's chain holds."""
        await self.brain.flush()
        return (await self.brain.counts(self.chain(channel)))["messages_seen"]

    def bot_channel(self, channel: simcord.ChannelHandle) -> Any:
        """The bot's own cached discord.py object for a channel."""
        return self.bot.get_channel(channel.id)

    def public_posts(self, channel: simcord.ChannelHandle | None = None) -> list[discord.Message]:
        """What the bot posted that everyone can see."""
        return [
            m
            for m in (channel or self.general).history()
            if m.author.id == self.bot.user.id and not m.flags.ephemeral  # type: ignore[union-attr]
        ]

    def message(self, message_id: int, *, viewer: simcord.MemberActor | None = None) -> discord.Message:
        """A message as it is now (edits included), as the viewer sees it."""
        channels = [self.general, *self.general.threads, *self.guild.channels.values()]
        for channel in channels:
            for message in channel.history(viewer=viewer or self.admin):
                if message.id == message_id:
                    return message
        raise LookupError(message_id)

    def requests(self, method: str, fragment: str) -> list[Any]:
        """The bot's REST calls with this method whose path contains fragment."""
        return [r for r in self.env.http_requests if r.method == method and fragment in r.path]

    async def slash_past_deadline(
        self,
        actor: simcord.MemberActor,
        command: str,
        monkeypatch: pytest.MonkeyPatch,
        slow: str = "flush",
        **options: Any,
    ) -> simcord.InteractionResult:
        """Run a command whose brain method `slow` (say, a flush under a flood, or a write waiting for
        a forget's transaction) returns only once ten seconds have passed: an interaction not
        deferred within 3 s is gone by then."""
        done = asyncio.Event()
        method = getattr(self.brain, slow)

        async def waiting(*args: Any, **kwargs: Any) -> Any:
            await self.env.external_wait(done.wait(), reason=f"a slow {slow}")
            return await method(*args, **kwargs)

        monkeypatch.setattr(self.brain, slow, waiting)
        result = await actor.slash(self.general, command, **options)
        await self.env.advance_time(10)
        done.set()
        await self.env.settle()
        monkeypatch.setattr(self.brain, slow, method)
        return result


@pytest.fixture
async def world(simcord_env: simcord.Env, simcord_bot: MarkovBot, brain: Brain) -> World:
    """A server with a Manage Server admin and two ordinary members; alice opted in."""
    guild = simcord_env.create_guild("Test Server")
    general = guild.create_text_channel("general")
    mods = guild.create_role("Mods", permissions=discord.Permissions(manage_guild=True))
    admin = guild.add_member(simcord_env.create_user("admin"), roles=[mods])
    alice = guild.add_member(simcord_env.create_user("alice"))
    bob = guild.add_member(simcord_env.create_user("bob"))
    world = World(simcord_env, simcord_bot, brain, guild, general, admin, alice, bob)
    await alice.slash(general, "markov optin")
    return world


def assert_never_pings(world: World) -> None:
    """Every message-bearing request the bot made carried allowed_mentions parse []."""
    checked = 0
    for request in world.env.http_requests:
        body = request.json
        if not isinstance(body, dict):
            continue
        data = body.get("data", body) if "type" in body else body
        if not isinstance(data, dict) or not ("content" in data or "embeds" in data):
            continue
        checked += 1
        allowed = data.get("allowed_mentions")
        assert allowed is not None and allowed["parse"] == [], (request.method, request.path, body)
        assert not allowed.get("users") and not allowed.get("roles") and not allowed.get("replied_user")
    assert checked


def assert_refused_in_one_line(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """Each change the busy database refused was logged in one warning line, and nothing else failed."""
    refused = [r for r in caplog.records if "changed nothing" in r.getMessage()]
    assert refused and all(r.levelno == logging.WARNING and r.exc_info is None for r in refused)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(isinstance(getattr(e, "original", e), DatabaseBusy) for e in world.env.errors)
