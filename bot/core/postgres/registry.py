"""Chains and authors in PostgreSQL: read on the pool and cached; made by the database, once, whoever asks.

``add_chain`` and ``add_author`` insert in a transaction of their own (one statement, committed
at once): the row's id comes from its table's identity sequence, and a process making the same
chain or author at the same moment waits on the UNIQUE key, then reads the first one's row. Only
committed rows are cached, so no cache holds an id that a rollback took back. (SQLite makes them
in its writer: bot.core.writer.Writer.add_chain and add_author, the same RegistryWrites contract.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from bot.core import fingerprints
from bot.core.contracts import RegistryStore, RegistryWrites
from bot.core.models import ChainInfo, ChainKey, ChainSummary, GuildSettings
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.schema import PQ
from bot.core.registry import AuthorKey
from bot.core.schema import StoreError

MAKE_ATTEMPTS = 5  # a chain or author made and deleted again by others between our insert and our read


def _info(row: asyncpg.Record) -> ChainInfo:
    return ChainInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


class Registry:
    """Finds and makes chains and authors, caching their committed rows."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self.chains: dict[ChainKey, ChainInfo] = {}
        self.authors: dict[AuthorKey, int] = {}

    def clear(self) -> None:
        """Forget the caches (read again on use)."""
        self.chains.clear()
        self.authors.clear()

    async def find_chain(self, key: ChainKey) -> ChainInfo | None:
        """The chain's row, or None when nothing was ever learned there."""
        info = self.chains.get(key)
        if info is None:
            row = await self._db.pool.fetchrow(PQ["chain_by_key"], key.platform, key.guild, key.channel)
            if row is None:
                return None
            info = self.chains[key] = _info(row)
        return info

    async def chain_by_id(self, chain_id: int) -> ChainInfo:
        """The row of a chain known to exist."""
        info = next((c for c in self.chains.values() if c.id == chain_id), None)
        if info is None:
            row = await self._db.pool.fetchrow(PQ["chain_by_id"], chain_id)
            if row is None:
                raise StoreError(f"chain {chain_id} does not exist (another process may have reset it)")
            info = _info(row)
        return info

    async def all_chains(self) -> list[ChainSummary]:
        """Every chain of the database, with what it has learned."""
        return [
            ChainSummary(ChainKey(p, g, c), int(m), int(t), None if at is None else int(at))
            for p, g, c, m, t, at in await self._db.pool.fetch(PQ["all_chains"])
        ]

    async def chain_author_ids(self, chain_id: int, limit: int) -> list[str]:
        """External ids of up to limit authors with messages learned in a chain."""
        rows = await self._db.pool.fetch(PQ["chain_author_ids"], chain_id, limit)
        return [str(row[0]) for row in rows]

    async def find_author(self, platform: str, guild: str, external_id: str) -> int | None:
        """The author's internal id, or None."""
        key = (platform, guild, external_id)
        if key in self.authors:
            return self.authors[key]
        found = await self._db.pool.fetchval(PQ["author_by_key"], *key)
        if found is None:
            return None
        self.authors[key] = int(found)
        return self.authors[key]

    async def add_chain(self, key: ChainKey, settings: GuildSettings) -> ChainInfo:
        """The chain's row, made now with the guild's order and run length unless another process made it."""
        args = (key.platform, key.guild, key.channel)
        for _ in range(MAKE_ATTEMPTS):
            row = await self._db.pool.fetchrow(
                PQ["insert_chain"], *args, settings.order, settings.run_length, fingerprints.CURRENT
            )
            row = row or await self._db.pool.fetchrow(PQ["chain_by_key"], *args)
            if row is not None:
                info = self.chains[key] = _info(row)
                return info
        raise StoreError(f"the chain was made and reset by other processes {MAKE_ATTEMPTS} times; try again")

    async def add_author(
        self, platform: str, guild: str, external_id: str, *, consented: bool = False
    ) -> int | None:
        """The author's internal id, made now unless another process made it; consented: made only
        while the member's consent is recorded (None once a forget removed it)."""
        key = (platform, guild, external_id)
        insert = PQ["insert_consenting_author" if consented else "insert_author"]
        for _ in range(MAKE_ATTEMPTS):
            found = await self._db.pool.fetchval(insert, *key)
            if found is None:
                found = await self._db.pool.fetchval(PQ["author_by_key"], *key)
            if found is not None:
                self.authors[key] = int(found)
                return self.authors[key]
            if consented and await self._db.pool.fetchval(PQ["consent_of"], *key) is None:
                return None
        raise StoreError(
            f"the author was made and forgotten by other processes {MAKE_ATTEMPTS} times; try again"
        )


if TYPE_CHECKING:
    _reads: type[RegistryStore] = Registry  # mypy checks this part against its contracts
    _writes: type[RegistryWrites] = Registry
