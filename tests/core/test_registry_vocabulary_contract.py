"""The registry and vocabulary contracts (bot.core.contracts), the same tests on every engine.

SQLite: the store's own parts over a file in tmp_path (chains and authors made by its writer, in
its write transactions). PostgreSQL: bot.core.postgres over a fresh database of a real server.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

import asyncpg
import pytest

from bot.core import fingerprints
from bot.core.contracts import RegistryStore, RegistryWrites, VocabularyStore
from bot.core.engines import PostgresUrl
from bot.core.models import ChainKey, GuildSettings
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.registry import Registry as PgRegistry
from bot.core.postgres.transactions import PgWrites
from bot.core.postgres.vocabulary import Vocabulary as PgVocabulary
from bot.core.store import Store

Work = Callable[[], Awaitable[None]]


class Failed(Exception):
    """Raised inside a write transaction to roll it back."""


class Engine(Protocol):
    """One engine's registry and vocabulary, its write transaction, and raw reads and writes beside them."""

    registry: RegistryStore
    makes: RegistryWrites
    vocabulary: VocabularyStore

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def write(self, work: Work) -> None: ...

    async def raw(self, sql: str, *args: object) -> list[tuple[object, ...]]: ...


class SqliteEngine:
    registry: RegistryStore
    makes: RegistryWrites
    vocabulary: VocabularyStore

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store: Store | None = None

    async def open(self) -> None:
        self.store = await Store(self.path).open()
        self.registry = self.store.registry
        self.vocabulary = self.store.vocabulary
        self.makes = self.store._writes

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None

    async def write(self, work: Work) -> None:
        assert self.store is not None
        async with self.store._db.write_lock:
            await self.store._writes.transaction(work)  # the writer's own: its rollback drops caches

    async def raw(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.path) as conn:  # beside the store, as another process would
            return [tuple(row) for row in conn.execute(sql.replace("$1", "?").replace("$2", "?"), args)]


class PostgresEngine:
    registry: RegistryStore
    makes: RegistryWrites
    vocabulary: VocabularyStore

    def __init__(self, url: str) -> None:
        self.url = url
        self.db: PgDatabase | None = None

    async def open(self) -> None:
        self.db = await PgDatabase.open(PostgresUrl(self.url))
        self.writes = PgWrites(self.db)
        registry = PgRegistry(self.db)
        self.registry, self.makes = registry, registry
        self.vocabulary = PgVocabulary(self.db, self.writes, 1000)

    async def close(self) -> None:
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def write(self, work: Work) -> None:
        async with self.writes.transaction():
            await work()

    async def raw(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()


@pytest.fixture
async def engine(where: Path | str) -> AsyncIterator[Engine]:
    opened: Engine = SqliteEngine(where) if isinstance(where, Path) else PostgresEngine(where)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def resolve(engine: Engine, texts: list[str], create: bool = True) -> dict[str, int]:
    """Token ids in a write transaction of their own."""
    found: dict[str, int] = {}

    async def work() -> None:
        found.update(await engine.vocabulary.resolve(texts, create))

    await engine.write(work)
    return found


async def add_refs(engine: Engine, refs: dict[int, int]) -> None:
    async def work() -> None:
        await engine.vocabulary.add_refs(refs)

    await engine.write(work)


async def stored_tokens(engine: Engine) -> dict[str, tuple[int, int]]:
    """text -> (id, refs), as the database holds them."""
    rows = await engine.raw("SELECT text, id, refs FROM tokens")
    return {str(text): (int(str(i)), int(str(refs))) for text, i, refs in rows}


# ---------------------------------------------------------------- registry


async def test_a_chain_is_made_once_and_found_by_key_and_by_id(engine: Engine) -> None:
    key = ChainKey("discord", "g1", "c1")
    assert await engine.registry.find_chain(key) is None
    made = await engine.makes.add_chain(key, GuildSettings(order=3, run_length=12))
    assert (made.order, made.run_length, made.scheme) == (3, 12, fingerprints.CURRENT)
    assert await engine.makes.add_chain(key, GuildSettings(order=1)) == made  # the first one's row
    assert await engine.registry.find_chain(key) == made
    engine.registry.clear()
    assert await engine.registry.find_chain(key) == made
    assert await engine.registry.chain_by_id(made.id) == made
    other = await engine.makes.add_chain(ChainKey("discord", "g1", "c2"), GuildSettings())
    assert other.id != made.id
    assert await engine.registry.find_chain(ChainKey("matrix", "g1", "c1")) is None


async def test_authors_are_made_once_per_platform_and_guild(engine: Engine) -> None:
    keys = [
        ("discord", "g1", "ann"),
        ("discord", "g2", "ann"),
        ("matrix", "g1", "ann"),
        ("discord", "g1", "bob"),
    ]
    ids = [await engine.makes.add_author(*key) for key in keys]
    assert len(set(ids)) == len(keys)
    assert [await engine.makes.add_author(*key) for key in keys] == ids
    engine.registry.clear()
    assert [await engine.registry.find_author(*key) for key in keys] == ids
    assert await engine.registry.find_author("discord", "g1", "cy") is None


async def test_every_chain_is_listed_in_code_point_order(engine: Engine) -> None:
    channels = ["b", "B", "a", "é", "Z", "中文", "🧪", "a b"]
    for channel in channels:
        await engine.makes.add_chain(ChainKey("discord", "g1", channel), GuildSettings())
    await engine.makes.add_chain(ChainKey("matrix", "!r", "x"), GuildSettings())
    listed = await engine.registry.all_chains()
    expected = sorted([("discord", "g1", c) for c in channels] + [("matrix", "!r", "x")])
    assert [(s.key.platform, s.key.guild, s.key.channel) for s in listed] == expected
    assert {(s.messages, s.tokens, s.learned_at) for s in listed} == {(0, 0, None)}


async def test_a_chain_lists_the_authors_it_learned_from(engine: Engine) -> None:
    chain = await engine.makes.add_chain(ChainKey("discord", "g1", "c1"), GuildSettings())
    other = await engine.makes.add_chain(ChainKey("discord", "g1", "c2"), GuildSettings())
    names = ["zoe", "Ann", "bob", "émile"]
    authors = {name: await engine.makes.add_author("discord", "g1", name) for name in names}
    await engine.makes.add_author("discord", "g1", "silent")  # no message in the chain
    rows = [(chain.id, authors[n]) for n in names for _ in range(2)] + [(other.id, authors["zoe"])]
    for key, (chain_id, author_id) in enumerate(rows):
        await engine.raw(
            "INSERT INTO messages (id, chain_id, author_id, fingerprint, tokens, chars, bytes) "
            f"VALUES ({key}, $1, $2, 0, 1, 1, 1)",
            chain_id,
            author_id,
        )
    assert await engine.registry.chain_author_ids(chain.id, 10) == sorted(names)
    assert await engine.registry.chain_author_ids(chain.id, 2) == sorted(names)[:2]
    assert await engine.registry.chain_author_ids(other.id, 10) == ["zoe"]


async def test_making_the_same_chain_and_author_at_once_gives_one_id(engine: Engine) -> None:
    key = ChainKey("discord", "g1", "c1")
    chains = await asyncio.gather(*(engine.makes.add_chain(key, GuildSettings()) for _ in range(8)))
    authors = await asyncio.gather(*(engine.makes.add_author("discord", "g1", "ann") for _ in range(8)))
    assert len(set(chains)) == 1 and len(set(authors)) == 1
    assert await engine.raw("SELECT count(*) FROM chains") == [(1,)]
    assert await engine.raw("SELECT count(*) FROM authors") == [(1,)]


# ---------------------------------------------------------------- vocabulary


async def test_tokens_get_one_id_each_kept_and_read_back(engine: Engine) -> None:
    texts = ["the", "cat", "sat", "the", "🧪", "ギルド\u200d", "'quoted' \"double\" ; --", "x" * 4000]
    ids = await resolve(engine, texts)
    assert set(ids) == set(texts)
    assert len(set(ids.values())) == len(ids) and min(ids.values()) >= 2  # 0 and 1: BEGIN and END
    assert await resolve(engine, texts, create=False) == ids
    engine.vocabulary.clear()
    assert await resolve(engine, list(reversed(texts))) == ids
    assert {text: token_id for text, (token_id, _) in (await stored_tokens(engine)).items()} == ids
    for text, token_id in ids.items():
        assert await engine.vocabulary.token_id(text) == token_id
    assert await engine.vocabulary.texts([ids[t] for t in texts]) == texts
    the, unknown = ids["the"], max(ids.values()) + 99
    assert await engine.vocabulary.texts([the, unknown, the]) == ["the", "", "the"]
    assert await engine.vocabulary.token_id("never") is None
    assert await resolve(engine, ["never", "cat"], create=False) == {"cat": ids["cat"]}


async def test_refs_add_up_and_a_token_at_zero_is_deleted(engine: Engine) -> None:
    ids = await resolve(engine, ["a", "b", "c"])
    await add_refs(engine, {ids["a"]: 3, ids["b"]: 1, ids["c"]: 0})
    await add_refs(engine, {ids["a"]: 2, ids["b"]: -1})
    stored = await stored_tokens(engine)
    assert {text: refs for text, (_, refs) in stored.items()} == {"a": 5, "c": 0}  # c was never used
    assert await engine.vocabulary.token_id("b") is None
    assert await resolve(engine, ["a", "b"], create=False) == {"a": ids["a"]}
    await add_refs(engine, {ids["a"]: -5})
    assert "a" not in await stored_tokens(engine)


async def test_ids_are_never_reused(engine: Engine) -> None:
    first = await resolve(engine, ["a", "b"])
    await add_refs(engine, {first["a"]: 1, first["b"]: 1})
    await add_refs(engine, {first["a"]: -1, first["b"]: -1})  # both deleted
    again = await resolve(engine, ["c", "a", "b"])
    assert not set(again.values()) & set(first.values())
    assert len(set(again.values())) == 3


async def test_no_cache_keeps_an_id_from_a_transaction_that_rolled_back(engine: Engine) -> None:
    kept = await resolve(engine, ["kept"])
    made: dict[str, int] = {}

    async def fails() -> None:
        made.update(await engine.vocabulary.resolve(["kept", "lost", "gone"], True))
        await engine.vocabulary.add_refs({made["lost"]: 1})
        raise Failed

    with pytest.raises(Failed):
        await engine.write(fails)
    assert made["kept"] == kept["kept"]
    assert set(await stored_tokens(engine)) == {"kept"}
    assert await resolve(engine, ["kept", "lost", "gone"], create=False) == kept  # from no cache
    remade = await resolve(engine, ["lost", "gone"])
    stored = await stored_tokens(engine)
    assert remade == {text: stored[text][0] for text in ("lost", "gone")}
    await add_refs(engine, {remade["lost"]: 1})
    assert (await stored_tokens(engine))["lost"][1] == 1


async def test_ids_outlive_the_process(engine: Engine) -> None:
    ids = await resolve(engine, ["a", "b"])
    chain = await engine.makes.add_chain(ChainKey("discord", "g1", "c1"), GuildSettings())
    author = await engine.makes.add_author("discord", "g1", "ann")
    await engine.close()
    await engine.open()
    assert await resolve(engine, ["b", "a"], create=False) == ids
    assert await engine.registry.find_chain(ChainKey("discord", "g1", "c1")) == chain
    assert await engine.registry.find_author("discord", "g1", "ann") == author
    new = await resolve(engine, ["c"])
    assert new["c"] not in ids.values()
