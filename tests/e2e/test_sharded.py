"""Sharded Discord end to end: two `markovbot run` processes, one shard each, over one database (a SQLite file or a PostgreSQL database); one process holding every shard."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
import yarl

from bot.core import engines
from bot.core.brain import Brain
from bot.core.models import ChainKey
from bot.discord_app import make_bot, serve
from bot.shards import ShardPlan
from tests.e2e.fake_discord import FakeDiscord, bot_settings, shard_of, shut_down, user

pytestmark = pytest.mark.timeout(60)

# `markovbot run` itself, pointed at the fake Discord (its REST base and gateway) first.
RUN = """
import sys
import discord, yarl
from bot.cli import main

if __name__ == "__main__":  # the walker process starts by spawning: it imports this file
    discord.http.Route.BASE = sys.argv[1]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(sys.argv[2])
    sys.exit(main(sys.argv[3:]))
"""
DEADLINE = 20.0  # seconds for any one thing a process should do
MEMBER_WORDS = {"purple", "mats", "rugs"}  # only the member who forgets says these
SERVER_A = [  # (who, text): no text has a run of 8 words, so the copy guard lets mixes through
    ("member", "the cat sat on purple mats"),
    ("member", "a dog sat on purple rugs"),
    ("member", "the dog sat on purple mats"),
    ("other", "the cat ran to green barns"),
    ("other", "a dog ran to green fields"),
    ("other", "the dog ran to green barns"),
]
SERVER_B = [("member", "a bird sat on purple rugs"), ("member", "the bird sat on purple mats")]


class BotProcess:
    """One `markovbot run` process; its log lines are collected as they come."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    async def wait_for_line(self, pattern: str) -> str:
        """The first log line matching pattern, waiting up to DEADLINE for it; fails if the process ends."""
        try:
            async with asyncio.timeout(DEADLINE):
                while True:
                    for line in self.lines:
                        if re.search(pattern, line):
                            return line
                    assert self.process.returncode is None, f"{self.name} ended: {self.log}"
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"{self.name} logged no {pattern!r} in {DEADLINE} s: {self.log}") from None

    @property
    def log(self) -> str:
        """Its log so far, for a failure message."""
        return "\n".join(self.lines[-40:])

    async def stop(self) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        if self.process.returncode is None:
            self.process.terminate()
        try:
            async with asyncio.timeout(DEADLINE):
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        await self._reader
        return code


async def start_bot(
    fake: FakeDiscord, tmp_path: Path, db: Path | str, name: str, args: list[str], env: dict[str, str]
) -> BotProcess:
    """Start `markovbot run ARGS` with the fake Discord and the shared database."""
    script = tmp_path / "run_bot.py"
    script.write_text(RUN, encoding="utf-8")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MARKOV_", "DISCORD_"))},
        "PYTHONPATH": os.getcwd(),
        "MARKOV_DATABASE_URL": str(db),
        "DISCORD_TOKEN": "fake.discord.token",
        "MARKOV_FLUSH_INTERVAL": "0.05",
        "MARKOV_COOLDOWN_SECONDS": "0",
        "MARKOV_LOG_LEVEL": "INFO",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        fake.http_base,
        fake.gateway_url,
        "run",
        *args,
        env=environment,
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return BotProcess(name, process)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The one database both processes use: a SQLite file, or a fresh PostgreSQL database (whose key
    file both processes share: data/markov.sqlite3.key under their common working directory)."""
    if request.param == "sqlite":
        return tmp_path / "shared.sqlite3"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def two_shards() -> AsyncIterator[FakeDiscord]:
    """A fake Discord with one server on each of two shards."""
    server = FakeDiscord(shards=2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def answer(fake: FakeDiscord, interaction_id: str) -> str:
    """The content of the bot's first answer to an interaction."""
    _, _, body = await fake.wait_for(lambda r: r[1].startswith(f"/interactions/{interaction_id}/"), DEADLINE)
    return str(body["data"]["content"])


async def until_learned(brain: Brain, ids: list[str]) -> None:
    """Wait (up to DEADLINE) until the database holds every message, as the bots commit them."""
    async with asyncio.timeout(DEADLINE):
        while True:
            if all([await brain.is_learned("discord", i) for i in ids]):
                return
            await asyncio.sleep(0.05)


async def test_two_processes_one_shard_each_learn_once_forget_at_once_and_sync_once(
    two_shards: FakeDiscord, tmp_path: Path, shared_db: Path | str
) -> None:
    fake = two_shards
    db = shared_db
    a, b = sorted(fake.channels, key=lambda g: shard_of(g, 2))
    assert (shard_of(a, 2), shard_of(b, 2)) == (0, 1)
    # Discord delivers a shard's events to every session identified for it (as while a restarted
    # process of a shard is up before the old one has closed): server A reaches both processes, so
    # both see its messages and the second can walk its chain too.
    fake.also_deliver[a] = {1}
    members = {"member": fake.member, "other": user("4242424242424242", "other")}

    first = await start_bot(fake, tmp_path, db, "shard 0", ["--shards", "0", "--shard-count", "2"], {})
    second = await start_bot(
        fake, tmp_path, db, "shard 1", [], {"MARKOV_SHARDS": "1", "MARKOV_SHARD_COUNT": "2"}
    )
    brain: Brain | None = None
    try:
        await first.wait_for_line(r"logged in as .* shard\(s\) 0 of 2")
        await second.wait_for_line(r"logged in as .* shard\(s\) 1 of 2")
        identified = sorted(r[2]["shard"] for r in fake.requests if r[1] == "IDENTIFY")
        assert identified == [[0, 2], [1, 2]]
        puts = [r for r in fake.requests if r[0] == "PUT" and r[1].endswith("/commands")]
        assert [r[1] for r in puts] == [f"/applications/{fake.app_id}/commands"], "synced once"
        await second.wait_for_line("commands are synced by the process holding shard 0: not syncing")
        await first.wait_for_line(r"synced \d+ command\(s\) to global")

        # The test's own view of the database, with the processes' key (the PostgreSQL key file is
        # named from the default SQLite path, relative to their working directory).
        brain = await Brain.open(db, walker="thread", key_path=tmp_path / engines.DEFAULT_SQLITE_PATH)
        for guild in (a, b):
            await brain.set_channel("discord", guild, fake.channels[guild], True)
        joins = [
            (members["member"], a, 0),
            (members["other"], a, 0),
            (members["member"], b, None),
        ]
        for who, guild, shard in joins:
            optin = await fake.send_command(who, "optin", [], guild=guild, shard=shard)
            assert "opted in" in await answer(fake, optin)

        ids = {
            guild: [await fake.send_message(members[who], text, guild=guild) for who, text in said]
            for guild, said in ((a, SERVER_A), (b, SERVER_B))
        }
        await until_learned(brain, ids[a] + ids[b])
        chain_a, chain_b = (ChainKey("discord", g, fake.channels[g]) for g in (a, b))
        # Learned once each, though both processes got server A's messages.
        assert (await brain.counts(chain_a))["messages_seen"] == len(SERVER_A)
        assert (await brain.counts(chain_b))["messages_seen"] == len(SERVER_B)
        assert (await brain.member_info("discord", a, fake.member["id"])).messages == 3

        async def generate(guild: str, start: str | None = None) -> str:
            options = [] if start is None else [{"name": "start", "type": 3, "value": start}]
            command = await fake.send_command(fake.member, "generate", options, guild=guild, shard=1)
            return await answer(fake, command)

        async def walked(guild: str, start: str) -> str:
            """A generated message: these chains are so small that about half of all walks repeat a
            learned message (5 in 9 in server A), and a guard that refuses all 5 tries of a command
            answers so; asked again, at most 10 times, a walk that is no copy comes."""
            for _ in range(10):
                text = await generate(guild, start)
                if "repeated a learned message" not in text:
                    break
            return text

        before = await walked(a, "purple")  # the second process walks the member's words
        assert "purple" in before.split() and "know the word" not in before

        forget = await fake.send_command(fake.member, "forget", [], guild=a, shard=0)
        await fake.press(fake.member, forget, "Forget me", shard=0)
        _, _, done = await fake.wait_for(
            lambda r: r[0] == "PATCH" and f"/token-{forget}/messages/@original" in r[1], DEADLINE
        )
        assert "forget" in done["content"].lower() or "forgot" in done["content"].lower()

        # At once, in the other process: none of the member's words in server A, still in server B.
        after = await generate(a, "purple")
        assert "know the word" in after, after
        for _ in range(8):
            text = await generate(a)
            assert not MEMBER_WORDS & set(text.split()), text
        assert "purple" in (await walked(b, "purple")).split()
        assert (await brain.member_info("discord", a, fake.member["id"])).messages == 0
    finally:
        codes = [await first.stop(), await second.stop()]
        print(f"--- shard 0 ---\n{first.log}\n--- shard 1 ---\n{second.log}")  # shown when the test fails
        if brain is not None:
            await brain.close()
    assert codes == [0, 0], first.log + "\n" + second.log
    assert not [line for p in (first, second) for line in p.lines if "Traceback" in line or " ERROR " in line]


async def test_a_shard_count_alone_runs_every_shard_in_one_process(
    two_shards: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = two_shards
    monkeypatch.setattr(discord.http.Route, "BASE", fake.http_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    settings = dataclasses.replace(bot_settings(fake, tmp_path / "all.sqlite3"), shards=ShardPlan(None, 2))
    brain = await Brain.open(settings.db_path, **{**settings.store_options, "walker": "thread"})
    bot = make_bot(brain, settings, guild_ready_timeout=0.1)

    async def at_once(shard_id: int | None, initial: bool) -> None:
        """Discord lets a bot IDENTIFY once per 5 s (discord.py waits); the fake has no such limit."""

    bot.before_identify_hook = at_once  # type: ignore[method-assign]
    runner = asyncio.create_task(bot.start(settings.discord_token or ""))
    try:
        async with asyncio.timeout(DEADLINE):
            while not bot.is_ready():
                assert not runner.done(), runner
                await asyncio.sleep(0.05)
        identified = [r[2]["shard"] for r in fake.requests if r[1] == "IDENTIFY"]
        assert identified == [[0, 2], [1, 2]]
        assert sorted(str(g.id) for g in bot.guilds) == sorted(fake.channels)
        assert sorted(bot.shards) == [0, 1] and bot.shard_count == 2
        assert (await bot.http.get_bot_gateway())[:2] == (2, fake.gateway_url)  # what Discord recommends

        for guild, channel in fake.channels.items():
            await brain.set_channel("discord", guild, channel, True)
            await brain.opt_in("discord", guild, fake.member["id"])
        ids = [await fake.send_message(fake.member, "the cat sat on the mat", guild=g) for g in fake.channels]
        await until_learned(brain, ids)
        puts = [r for r in fake.requests if r[0] == "PUT" and r[1].endswith("/commands")]
        assert len(puts) == 1
    finally:
        await shut_down(bot, runner, brain)


async def test_discord_requiring_shards_stops_an_unsharded_bot_in_one_line(
    two_shards: FakeDiscord,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = two_shards
    fake.require_sharding = True
    monkeypatch.setattr(discord.http.Route, "BASE", fake.http_base)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
    settings = bot_settings(fake, tmp_path / "big.sqlite3")
    brain = await Brain.open(settings.db_path, **{**settings.store_options, "walker": "thread"})
    async with asyncio.timeout(DEADLINE):
        assert await serve(settings, brain=brain) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Discord requires sharding" in err and "--shard-count" in err, err
    assert "Traceback" not in err
