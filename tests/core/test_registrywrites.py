"""SQLite's new chains and authors (bot.core.registrywrites), made through the writer's transactions."""

from __future__ import annotations

from pathlib import Path

from bot.core.models import ChainKey, GuildSettings
from bot.core.store import Store


async def test_a_chain_and_an_author_are_made_once_and_committed(db_path: Path) -> None:
    async with Store(db_path) as store:
        made = store._writes.registry_writes
        key = ChainKey("test", "g", "c")
        chain = await made.add_chain(key, GuildSettings(order=3, run_length=12))
        assert (chain.order, chain.run_length) == (3, 12)
        assert await made.add_chain(key, GuildSettings(order=1)) == chain  # the first one's row
        other = await made.add_chain(ChainKey("test", "g", "d"), GuildSettings())
        assert other.id != chain.id
        alice = await made.add_author("test", "g", "alice")
        assert await made.add_author("test", "g", "alice") == alice
        assert await made.add_author("test", "g", "bob") != alice
    async with Store(db_path) as store:  # committed, not only cached
        assert await store.find_chain(key) == chain
        assert await store.find_author("test", "g", "alice") == alice
