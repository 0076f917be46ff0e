"""Discord faults end to end (issue #7): 429s, 403s and gateway reconnects are logged, retried where sensible, and lose no learning."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.core.brain import Brain
from bot.core.models import ChainKey
from bot.discord_app import MarkovBot
from tests.e2e.fake_discord import FakeDiscord, bot_settings, shut_down

pytestmark = pytest.mark.timeout(30)

CORPUS = [
    "the cat sat on the mat today",
    "the dog sat on the log yesterday",
    "a cat and a dog met there",
    "the cat ran to the barn at noon",
    "a dog ran to the mat at dawn",
    "the bird sang on the log all day",
]
RETRY_AFTER = 0.2


@dataclass
class Running:
    """A MarkovBot connected to the fake Discord, in a channel that learns from one opted-in member."""

    fake: FakeDiscord
    bot: MarkovBot
    brain: Brain
    runner: asyncio.Task[None]

    @property
    def chain(self) -> ChainKey:
        """The general channel's chain."""
        return ChainKey("discord", self.fake.guild_id, self.fake.channel_id)

    @property
    def channel_messages(self) -> str:
        """Where the bot posts in the general channel."""
        return f"/channels/{self.fake.channel_id}/messages"

    async def post(self, *texts: str) -> list[str]:
        """The opted-in member posts each text; returns the message ids."""
        return [await self.fake.send_message(self.fake.member, text) for text in texts]

    async def until_learned(self, ids: list[str], seconds: float = 5) -> None:
        """Flush until every message is learned (committed, not only queued)."""
        store = self.brain.store
        async with asyncio.timeout(seconds):
            while True:
                await self.brain.flush()
                if all([await store.is_learned("discord", i) for i in ids]):
                    return
                await asyncio.sleep(0.02)

    async def until_duplicates(self, count: int, seconds: float = 5) -> None:
        """Flush until the store has dropped `count` already-learned messages, and no more."""
        store = self.brain.store
        async with asyncio.timeout(seconds):
            while store.duplicates < count:
                await self.brain.flush()
                await asyncio.sleep(0.02)
        await self.brain.flush()
        assert store.duplicates == count


@pytest.fixture
async def running(fake: FakeDiscord, tmp_path: Path) -> AsyncIterator[Running]:
    """The bot logged in and ready; the general channel enabled and the member opted in."""
    settings = bot_settings(fake, tmp_path / "faults.sqlite3")
    brain = await Brain.open(settings.db_path, **settings.store_options)
    # Random(1).random() is 0.134: with a chime chance of 0.5 the first message chimes in.
    # guild_ready_timeout: how long discord.py waits for more servers before READY (2 s by default).
    bot = MarkovBot(brain, settings, rng=random.Random(1), guild_ready_timeout=0.1)
    runner = asyncio.create_task(bot.start(settings.discord_token or ""))
    try:
        async with asyncio.timeout(10):
            while not bot.is_ready():
                assert not runner.done(), runner
                await asyncio.sleep(0.02)
        await brain.set_channel("discord", fake.guild_id, fake.channel_id, True)
        await brain.opt_in("discord", fake.guild_id, fake.member["id"])
        yield Running(fake, bot, brain, runner)
    finally:
        await shut_down(bot, runner, brain)


def statuses(fake: FakeDiscord, method: str, path: str) -> list[tuple[int, float]]:
    """(status, time) of each answer the fake gave to requests on this path."""
    return [(status, at) for m, p, status, at in fake.responses if m == method and p.startswith(path)]


def assert_retried_after_waiting(fake: FakeDiscord, method: str, path: str) -> None:
    """One 429, then one success no sooner than Retry-After."""
    answers = statuses(fake, method, path)
    assert [status for status, _ in answers] == [429, 200], answers
    assert answers[1][1] - answers[0][1] >= RETRY_AFTER * 0.9, "retried before Retry-After"


def assert_no_errors(caplog: pytest.LogCaptureFixture, running: Running) -> None:
    """No traceback logged (e.g. 'Ignoring exception in on_message') and the client still runs."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert not running.runner.done() and not running.bot.is_closed()


# ---------------------------------------------------------------------------- 429


async def test_a_rate_limited_interaction_answer_and_followup_are_retried(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """/markov generate count:2 answers through the interaction callback and a followup: both 429 once."""
    fake = running.fake
    caplog.set_level(logging.WARNING)
    await running.until_learned(await running.post(*CORPUS))
    callback, followup = "/interactions/", f"/webhooks/{fake.app_id}/"
    fake.rate_limit("POST", callback, retry_after=RETRY_AFTER)
    fake.rate_limit("POST", followup, retry_after=RETRY_AFTER)

    generate = await fake.send_command(
        fake.member,
        "generate",
        [{"name": "start", "type": 3, "value": "cat"}, {"name": "count", "type": 4, "value": 2}],
    )
    answers = await fake.wait_for_all(lambda r: r[1].startswith(f"/interactions/{generate}/"), 2)
    followups = await fake.wait_for_all(lambda r: r[1].startswith(followup), 2)

    assert answers[0][2] == answers[1][2], "the retry sends the same answer"
    assert_retried_after_waiting(fake, "POST", callback)
    assert "cat" in answers[1][2]["data"]["content"].lower()
    assert followups[0][2] == followups[1][2]
    assert followups[1][2]["content"]
    assert_retried_after_waiting(fake, "POST", followup)
    limited = [
        r
        for r in caplog.records
        if r.name == "discord.webhook.async_"
        and r.levelno == logging.WARNING
        and "rate limited" in r.getMessage()
    ]
    assert len(limited) == 2, [r.getMessage() for r in caplog.records]
    assert_no_errors(caplog, running)


@pytest.mark.parametrize("is_global", [False, True], ids=["route", "global"])
async def test_a_rate_limited_mention_reply_is_retried(
    running: Running, caplog: pytest.LogCaptureFixture, is_global: bool
) -> None:
    """A reply to a mention (POST /channels/{id}/messages) that gets 429 is sent again after Retry-After."""
    fake = running.fake
    caplog.set_level(logging.WARNING)
    await running.until_learned(await running.post(*CORPUS))
    fake.rate_limit("POST", running.channel_messages, retry_after=RETRY_AFTER, is_global=is_global)

    [mention] = await running.post(f"<@{fake.app_id}> what about the cat")
    posts = await fake.wait_for_all(lambda r: r[0] == "POST" and r[1] == running.channel_messages, 2)

    assert posts[0][2] == posts[1][2], "the retry sends the same reply"
    assert str(posts[1][2]["message_reference"]["message_id"]) == mention
    assert posts[1][2]["content"]
    assert_retried_after_waiting(fake, "POST", running.channel_messages)
    http = [
        r.getMessage() for r in caplog.records if r.name == "discord.http" and r.levelno == logging.WARNING
    ]
    assert any("We are being rate limited" in m and "429" in m for m in http), http
    assert any("Global rate limit" in m for m in http) is is_global, http
    assert_no_errors(caplog, running)


# ---------------------------------------------------------------------------- 403


async def test_a_forbidden_reply_is_logged_with_ids_and_learning_goes_on(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """A mention answered in a channel where the bot may not post: one WARNING with ids, no text, no crash."""
    fake = running.fake
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="cogs")  # every line of ours, to check none holds message text
    await running.until_learned(await running.post(*CORPUS))
    fake.forbid("POST", running.channel_messages)

    await running.post(f"<@{fake.app_id}> zebra crossing secret")
    await fake.wait_for(lambda r: r[0] == "POST" and r[1] == running.channel_messages)
    record = await logged(caplog, "cogs.learning", "cannot answer a mention")
    assert_forbidden_logged(record, caplog, fake, secret="zebra")
    assert_no_errors(caplog, running)

    [later] = await running.post("the zebra sat on the log at noon")
    await running.until_learned([later])
    assert (await running.brain.counts(running.chain))["messages_seen"] == len(CORPUS) + 1


async def test_a_forbidden_chime_is_logged_with_ids_and_its_message_is_learned(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """Chiming in (a plain channel post) where the bot may not post: one WARNING with ids; the message is learned."""
    fake = running.fake
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.DEBUG, logger="cogs")  # every line of ours, to check none holds message text
    await running.until_learned(await running.post(*CORPUS))
    await running.brain.update_settings("discord", fake.guild_id, chime_chance=0.5)
    fake.forbid("POST", running.channel_messages)

    [trigger] = await running.post("a zebra sat on the mat at dawn")
    await fake.wait_for(lambda r: r[0] == "POST" and r[1] == running.channel_messages)
    record = await logged(caplog, "cogs.learning", "cannot chime in")
    assert_forbidden_logged(record, caplog, fake, secret="zebra")
    assert_no_errors(caplog, running)

    [later] = await running.post("the zebra ran to the barn all day")
    await running.until_learned([trigger, later])
    assert (await running.brain.counts(running.chain))["messages_seen"] == len(CORPUS) + 2


async def logged(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> logging.LogRecord:
    """The first record of this logger containing text, waiting up to 5 s for it."""
    async with asyncio.timeout(5):
        while True:
            for record in caplog.records:
                if record.name == logger and text in record.getMessage():
                    return record
            await asyncio.sleep(0.02)


def assert_forbidden_logged(
    record: logging.LogRecord, caplog: pytest.LogCaptureFixture, fake: FakeDiscord, *, secret: str
) -> None:
    """A WARNING naming the guild, the channel and Discord's reason, and no message text anywhere."""
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    warnings = [r for r in caplog.records if r.name.startswith("cogs") and r.levelno >= logging.WARNING]
    assert warnings == [record], [r.getMessage() for r in warnings]
    assert fake.guild_id in message and fake.channel_id in message, message
    assert "Missing Permissions" in message
    assert record.exc_info is None, "a clear line, not a traceback"
    assert all(secret not in r.getMessage() for r in caplog.records), "message text must not be logged"


# ---------------------------------------------------------------------------- gateway


async def _reconnect(fake: FakeDiscord) -> None:
    await fake.request_reconnect()


async def _drop(fake: FakeDiscord) -> None:
    await fake.drop_connection(4000)


async def _invalid_resumable(fake: FakeDiscord) -> None:
    await fake.invalidate_session(resumable=True)


@pytest.mark.parametrize(
    "disconnect",
    [_reconnect, _drop, _invalid_resumable],
    ids=["op7-reconnect", "close-4000", "op9-resumable"],
)
async def test_a_gateway_reconnect_resumes_and_learns_every_message_once(
    running: Running, caplog: pytest.LogCaptureFixture, disconnect: Callable[[FakeDiscord], Awaitable[None]]
) -> None:
    """Messages before, during (replayed on RESUME) and after a reconnect are learned exactly once."""
    fake = running.fake
    caplog.set_level(logging.INFO, logger="discord.gateway")
    before = await running.post(
        "the cat sat on the mat today", "the dog sat on the log", "a bird sang on the barn"
    )
    await running.until_learned(before)
    seen = fake.sequence
    fake.replay_overlap = 1  # Discord may replay an event the client had: the last message before

    fake.hold()  # members keep posting while the connection stalls
    during = await running.post("the cat ran to the barn", "a dog met the bird at noon")
    await disconnect(fake)
    _, _, resume = await fake.wait_for(lambda r: r[1] == "RESUME")
    after = await running.post("the bird ran to the mat", "a cat met a dog at dawn")

    assert resume == {"session_id": "fake-session-1", "seq": seen, "replayed": 1 + len(during)}
    everything = before + during + after
    await running.until_learned(everything)
    assert (await running.brain.counts(running.chain))["messages_seen"] == len(everything)
    info = await running.brain.member_info("discord", fake.guild_id, fake.member["id"])
    assert info.messages == len(everything)
    await running.until_duplicates(1)  # the replayed message reaches the store, which drops it
    assert sum(r[1] == "IDENTIFY" for r in fake.requests) == 1, "resumed, not identified again"
    assert any("successfully RESUMED" in r.getMessage() for r in caplog.records)
    assert_no_errors(caplog, running)


async def test_an_invalidated_session_identifies_again_and_keeps_learning(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    """Op 9 (not resumable): the client IDENTIFIes afresh; what was learned stays, new messages are learned once."""
    fake = running.fake
    caplog.set_level(logging.WARNING)
    before = await running.post("the cat sat on the mat today", "the dog sat on the log")
    await running.until_learned(before)

    ready = asyncio.create_task(running.bot.wait_for("ready", timeout=9))
    await asyncio.sleep(0)  # the waiter is registered before the session ends
    await fake.invalidate_session(resumable=False)
    await fake.wait_for_all(lambda r: r[1] == "IDENTIFY", 2)  # discord.py waits 5 s before identifying again
    await ready  # READY and the server again
    assert running.bot.get_guild(int(fake.guild_id)) is not None
    after = await running.post("the bird ran to the mat", "a cat met a dog at dawn")
    await fake.send_message(fake.member, "the dog sat on the log", before[1])  # the same message again

    everything = before + after
    await running.until_learned(everything)
    await running.until_duplicates(1)
    assert (await running.brain.counts(running.chain))["messages_seen"] == len(everything)
    assert not any(r[1] == "RESUME" for r in fake.requests)
    assert_no_errors(caplog, running)
