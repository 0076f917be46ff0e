"""PostgreSQL's guild state with several processes: a change anywhere reaches every process's cache."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from bot.core.engines import PostgresUrl
from bot.core.models import GuildSettings
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.guildstate import GuildState

ROOT = Path(__file__).resolve().parents[2]
Opener = Callable[[], Awaitable[GuildState]]


@pytest.fixture
async def open_state(pg_url: str) -> AsyncIterator[Opener]:
    """Opens a guild state over a pool of its own, as another process would; all closed after the test."""
    opened: list[tuple[PgDatabase, GuildState]] = []

    async def open_one() -> GuildState:
        db = await PgDatabase.open(PostgresUrl(pg_url))
        state = GuildState(db)
        await state.start()
        opened.append((db, state))
        return state

    try:
        yield open_one
    finally:
        for db, state in opened:
            await state.close()
            await db.close()


async def raw(url: str, *statements: str) -> None:
    """Run statements as psql would: not through markovbot."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_change_by_one_process_reaches_the_others_cache(open_state: Opener) -> None:
    a, b = await open_state(), await open_state()
    assert a.listening and b.listening
    assert await a.consenting("discord", "g1") == set()  # cached in a
    assert await a.enabled_channels("discord", "g1") == set()
    assert await a.settings("discord", "g1") == GuildSettings()
    assert await b.set_consent("discord", "g1", "ann", True) is True
    assert await b.set_channel("discord", "g1", "c1", True) is True
    await b.put_settings("discord", "g1", GuildSettings(order=3, chime_chance=0.5))
    await a.sync()
    assert await a.consenting("discord", "g1") == {"ann"}
    assert await a.enabled_channels("discord", "g1") == {"c1"}
    assert await a.settings("discord", "g1") == GuildSettings(order=3, chime_chance=0.5)
    assert await b.set_consent("discord", "g1", "ann", False) is True
    await a.sync()
    assert await a.consenting("discord", "g1") == set()
    assert await a.set_consent("discord", "g1", "ann", False) is False  # the database decides, not a cache


async def test_reads_are_cached_and_only_a_notice_invalidates_them(pg_url: str, open_state: Opener) -> None:
    a = await open_state()
    assert await a.consenting("discord", "g1") == set()
    # A change that tells no one (its trigger off) is not seen: the cache answers.
    await raw(
        pg_url,
        "ALTER TABLE consent DISABLE TRIGGER consent_changed",
        "INSERT INTO consent VALUES ('discord', 'g1', 'ann', 0)",
        "ALTER TABLE consent ENABLE TRIGGER consent_changed",
    )
    await a.sync()
    assert await a.consenting("discord", "g1") == set()
    # The same kind of change with the trigger on is seen.
    await raw(pg_url, "INSERT INTO consent VALUES ('discord', 'g1', 'bob', 0)")
    await a.sync()
    assert await a.consenting("discord", "g1") == {"ann", "bob"}


async def test_changes_made_outside_markovbot_reach_the_caches(pg_url: str, open_state: Opener) -> None:
    a = await open_state()
    await a.set_consent("discord", "g1", "ann", True)
    await a.put_settings("discord", "g1", GuildSettings(order=3))
    assert await a.consenting("discord", "g1") == {"ann"}
    assert await a.settings("discord", "g1") == GuildSettings(order=3)
    await raw(pg_url, "UPDATE guild_settings SET run_length = 20", "TRUNCATE consent")
    await a.sync()
    assert await a.settings("discord", "g1") == GuildSettings(order=3, run_length=20)
    assert await a.consenting("discord", "g1") == set()


async def test_a_change_by_another_os_process_reaches_this_ones_cache(
    pg_url: str, open_state: Opener
) -> None:
    a = await open_state()
    assert await a.consenting("matrix", "!room") == set()
    assert await a.enabled_channels("matrix", "!room") == set()
    for args in (("consent", "matrix", "!room", "@ann:hs", "in"), ("channel", "matrix", "!room", "c1", "on")):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.core.pg_helper",
            pg_url,
            *args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-500:]
        assert out.decode().strip() == "True"
    await a.sync()
    assert await a.consenting("matrix", "!room") == {"@ann:hs"}
    assert await a.enabled_channels("matrix", "!room") == {"c1"}


async def test_a_lost_listener_drops_the_caches_and_listens_again(pg_url: str, open_state: Opener) -> None:
    a, b = await open_state(), await open_state()
    assert await a.consenting("discord", "g1") == set()
    conn = await asyncpg.connect(pg_url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    assert killed == 2  # a's listener and b's
    await b.set_consent("discord", "g1", "ann", True)  # told no one: nobody listens
    await a.sync()  # returns once a has noticed its listener is gone (and dropped its caches)
    assert await a.consenting("discord", "g1") == {"ann"}
    assert a.listening  # the read opened a new listener
    await b.set_consent("discord", "g1", "bob", True)
    await a.sync()
    assert await a.consenting("discord", "g1") == {"ann", "bob"}


async def test_a_notice_for_an_id_too_long_to_carry_drops_every_cache(open_state: Opener) -> None:
    a, b = await open_state(), await open_state()
    long_guild = "g" * 9000
    assert await a.consenting("discord", long_guild) == set()
    assert await a.consenting("discord", "short") == set()
    await b.set_consent("discord", long_guild, "ann", True)
    await a.sync()
    assert await a.consenting("discord", long_guild) == {"ann"}
