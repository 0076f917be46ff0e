"""Chains and authors: reading their rows, and the caches of their ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.connections import Connections
from bot.core.contracts import RegistryStore, RegistryWrites
from bot.core.models import ChainInfo, ChainKey, ChainSummary
from bot.core.sql import Q

AuthorKey = tuple[str, str, str]  # (platform, guild, external id)


class Registry:
    """Finds chains and authors (on the reader), caching their rows; the writer creates them."""

    def __init__(self, db: Connections) -> None:
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
            async with self._db.r.execute(Q["chain_by_key"], (key.platform, key.guild, key.channel)) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            info = self.chains[key] = ChainInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3]))
        return info

    async def chain_by_id(self, chain_id: int) -> ChainInfo:
        """The row of a chain known to exist."""
        info = next((c for c in self.chains.values() if c.id == chain_id), None)
        if info is None:
            async with self._db.r.execute(Q["chain_by_id"], (chain_id,)) as cur:
                crow = await cur.fetchone()
            assert crow is not None
            info = ChainInfo(int(crow[0]), int(crow[1]), int(crow[2]), int(crow[3]))
        return info

    async def all_chains(self) -> list[ChainSummary]:
        """Every chain of the database, with what it has learned."""
        async with self._db.r.execute(Q["all_chains"]) as cur:
            rows = await cur.fetchall()
        return [
            ChainSummary(ChainKey(p, g, c), int(m), int(t), None if at is None else int(at))
            for p, g, c, m, t, at in rows
        ]

    async def chain_author_ids(self, chain_id: int, limit: int) -> list[str]:
        """External ids of up to limit authors with messages learned in a chain."""
        async with self._db.r.execute(Q["chain_author_ids"], (chain_id, limit)) as cur:
            return [str(row[0]) for row in await cur.fetchall()]

    async def find_author(self, platform: str, guild: str, external_id: str) -> int | None:
        """The author's internal id, or None."""
        key = (platform, guild, external_id)
        if key in self.authors:
            return self.authors[key]
        async with self._db.r.execute(Q["author_by_key"], key) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        self.authors[key] = int(row[0])
        return self.authors[key]


if TYPE_CHECKING:
    from bot.core.writer import Writer

    _conforms: type[RegistryStore] = Registry  # mypy checks this part against its contract
    _makes: type[RegistryWrites] = Writer  # SQLite makes chains and authors in its writer
