"""The guild-state contract (bot.core.contracts.GuildStateStore), the same tests on every engine.

SQLite: the store's own part over a file in tmp_path. PostgreSQL: bot.core.postgres over a fresh
database of a real server (tests/conftest.py: MARKOV_TEST_DATABASE_URL, or a throwaway server).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import asyncpg
import pytest

from bot.core.contracts import GuildStateStore
from bot.core.engines import PostgresUrl
from bot.core.models import GuildSettings
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.guildstate import GuildState as PgGuildState
from bot.core.store import Store


class Engine(Protocol):
    """One engine's guild state, opened and reopened, and a write behind its back."""

    async def open(self) -> GuildStateStore: ...

    async def close(self) -> None: ...

    async def delete_consent_row(self, platform: str, guild: str, member: str) -> None: ...


class SqliteEngine:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: Store | None = None

    async def open(self) -> GuildStateStore:
        self.store = await Store(self.path).open()
        return self.store.guild_state

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def delete_consent_row(self, platform: str, guild: str, member: str) -> None:
        with sqlite3.connect(self.path) as conn:  # as a forget's transaction does, on its own connection
            conn.execute(
                "DELETE FROM consent WHERE platform = ? AND guild = ? AND member = ?",
                (platform, guild, member),
            )


class PostgresEngine:
    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[tuple[PgDatabase, PgGuildState]] = []

    async def open(self) -> GuildStateStore:
        db = await PgDatabase.open(PostgresUrl(self.url))
        state = PgGuildState(db)
        await state.start()
        self.opened.append((db, state))
        return state

    async def close(self) -> None:
        while self.opened:
            db, state = self.opened.pop()
            await state.close()
            await db.close()

    async def delete_consent_row(self, platform: str, guild: str, member: str) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(
                "DELETE FROM consent WHERE platform = $1 AND guild = $2 AND member = $3",
                platform,
                guild,
                member,
            )
        finally:
            await conn.close()


@pytest.fixture
async def engine(where: Path | str) -> AsyncIterator[Engine]:
    opened: Engine = SqliteEngine(where) if isinstance(where, Path) else PostgresEngine(where)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def guilds(engine: Engine) -> GuildStateStore:
    return await engine.open()


async def test_consent_is_given_once_and_withdrawn_once(guilds: GuildStateStore) -> None:
    assert await guilds.consenting("discord", "g1") == set()
    assert await guilds.set_consent("discord", "g1", "ann", True) is True
    assert await guilds.set_consent("discord", "g1", "ann", True) is False
    assert await guilds.set_consent("discord", "g1", "bob", True) is True
    assert await guilds.consenting("discord", "g1") == {"ann", "bob"}
    assert await guilds.set_consent("discord", "g1", "ann", False) is True
    assert await guilds.set_consent("discord", "g1", "ann", False) is False
    assert await guilds.consenting("discord", "g1") == {"bob"}


async def test_guilds_and_platforms_are_apart(guilds: GuildStateStore) -> None:
    await guilds.set_consent("discord", "g1", "ann", True)
    await guilds.set_channel("discord", "g1", "c1", True)
    await guilds.put_settings("discord", "g1", GuildSettings(order=3))
    for platform, guild in (("discord", "g2"), ("matrix", "g1")):
        assert await guilds.consenting(platform, guild) == set()
        assert await guilds.enabled_channels(platform, guild) == set()
        assert await guilds.settings(platform, guild) == GuildSettings()


async def test_channels_are_enabled_once_and_disabled_once(guilds: GuildStateStore) -> None:
    assert await guilds.enabled_channels("matrix", "!room") == set()
    assert await guilds.set_channel("matrix", "!room", "c1", True) is True
    assert await guilds.set_channel("matrix", "!room", "c1", True) is False
    assert await guilds.set_channel("matrix", "!room", "c2", True) is True
    assert await guilds.set_channel("matrix", "!room", "c1", False) is True
    assert await guilds.set_channel("matrix", "!room", "c1", False) is False
    assert await guilds.enabled_channels("matrix", "!room") == {"c2"}


async def test_settings_default_until_put_then_read_back_exactly(guilds: GuildStateStore) -> None:
    assert await guilds.settings("discord", "g1") == GuildSettings()
    first = GuildSettings(order=3, reply_on_mention=False, chime_chance=0.1, run_length=12, copy_guard=False)
    await guilds.put_settings("discord", "g1", first)
    assert await guilds.settings("discord", "g1") == first
    second = GuildSettings(order=1, chime_chance=1 / 3)
    await guilds.put_settings("discord", "g1", second)
    assert await guilds.settings("discord", "g1") == second


async def test_what_is_read_after_clear_comes_from_the_database(guilds: GuildStateStore) -> None:
    await guilds.set_consent("discord", "g1", "ann", True)
    await guilds.set_channel("discord", "g1", "c1", True)
    await guilds.put_settings("discord", "g1", GuildSettings(chime_chance=0.25))
    guilds.clear()
    assert await guilds.consenting("discord", "g1") == {"ann"}
    assert await guilds.enabled_channels("discord", "g1") == {"c1"}
    assert await guilds.settings("discord", "g1") == GuildSettings(chime_chance=0.25)


async def test_the_state_outlives_the_process(engine: Engine) -> None:
    guilds = await engine.open()
    await guilds.set_consent("discord", "g1", "ann", True)
    await guilds.set_channel("discord", "g1", "c1", True)
    await guilds.put_settings("discord", "g1", GuildSettings(run_length=16))
    await engine.close()
    again = await engine.open()
    assert await again.consenting("discord", "g1") == {"ann"}
    assert await again.enabled_channels("discord", "g1") == {"c1"}
    assert await again.settings("discord", "g1") == GuildSettings(run_length=16)


async def test_a_forgotten_member_is_dropped_from_the_cached_consent(engine: Engine) -> None:
    guilds = await engine.open()
    await guilds.set_consent("discord", "g1", "ann", True)
    await guilds.set_consent("discord", "g1", "bob", True)
    assert await guilds.consenting("discord", "g1") == {"ann", "bob"}  # cached now
    await engine.delete_consent_row("discord", "g1", "ann")  # the forget's own transaction
    guilds.drop_member("discord", "g1", "ann")
    assert await guilds.consenting("discord", "g1") == {"bob"}
    assert await guilds.set_consent("discord", "g1", "ann", True) is True  # opting in again works


async def test_any_unicode_and_long_ids_are_kept_as_given(guilds: GuildStateStore) -> None:
    guild = "ギルド\u200d🧪" + "x" * 9000  # longer than a PostgreSQL notice may carry
    member = "名前 'quoted' \"double\" ; DROP TABLE consent; --"
    assert await guilds.set_consent("matrix", guild, member, True) is True
    assert await guilds.set_channel("matrix", guild, "#général", True) is True
    guilds.clear()
    assert await guilds.consenting("matrix", guild) == {member}
    assert await guilds.enabled_channels("matrix", guild) == {"#général"}


async def test_writes_at_once_each_land(guilds: GuildStateStore) -> None:
    members = [f"m{i}" for i in range(20)]
    results = await asyncio.gather(*(guilds.set_consent("discord", "g1", m, True) for m in members))
    assert results == [True] * len(members)
    guilds.clear()
    assert await guilds.consenting("discord", "g1") == set(members)


async def test_the_same_change_at_once_changes_once(guilds: GuildStateStore) -> None:
    opt_in = await asyncio.gather(*(guilds.set_consent("discord", "g1", "ann", True) for _ in range(5)))
    enable = await asyncio.gather(*(guilds.set_channel("discord", "g1", "c1", True) for _ in range(5)))
    opt_out = await asyncio.gather(*(guilds.set_consent("discord", "g1", "ann", False) for _ in range(5)))
    assert sorted(opt_in) == sorted(enable) == sorted(opt_out) == [False] * 4 + [True]
    assert await guilds.consenting("discord", "g1") == set()
    assert await guilds.enabled_channels("discord", "g1") == {"c1"}
