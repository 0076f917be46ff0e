"""SQLite's new chains and authors: ids taken from the database's counters, in the writer's transaction.

The RegistryWrites contract (bot.core.contracts) on SQLite: a chain's or an author's row is made in
a write transaction of the writer's (bot.core.writer), joining an import's open one, unless another
process made it first; its id comes from the counters table (next_chain_id, next_author_id), and
the registry's caches (bot.core.registry) learn it once made. PostgreSQL's registry makes its rows
by identity column instead (bot.core.postgres.registry).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bot.core import fingerprints
from bot.core.models import ChainInfo, ChainKey, GuildSettings
from bot.core.writetx import Transaction, WriteTx

if TYPE_CHECKING:
    from bot.core.writer import AnyRegistry


class RegistryWriter:
    """Makes chains and authors (SQLite's), with the writer's collaborators."""

    def __init__(
        self, tx: WriteTx, registry: AnyRegistry, *, lock: asyncio.Lock, transaction: Transaction
    ) -> None:
        self.lock = lock  # the store's write lock
        self._sql = tx.sql
        self._q = tx.sql.statements
        self._registry = registry  # its caches learn every row made
        self.transaction = transaction  # the writer's: one write transaction, or the import's

    async def add_chain(self, key: ChainKey, settings: GuildSettings) -> ChainInfo:
        """A new chain's row, made with the guild's order and run length (unless another process just did).

        SQLite's (PostgreSQL's registry makes chains in a statement of their own, by identity column).
        """
        found: list[ChainInfo] = []
        sql, q = self._sql, self._q

        async def work() -> None:
            found.clear()
            row = await sql.fetchone(q["chain_by_key"], (key.platform, key.guild, key.channel))
            if row is None:
                chain_id = await self._take_ids("next_chain_id", 1)
                scheme = fingerprints.CURRENT
                args = (
                    chain_id,
                    key.platform,
                    key.guild,
                    key.channel,
                    settings.order,
                    settings.run_length,
                    scheme,
                )
                await sql.execute(q["insert_chain"], args)
                found.append(ChainInfo(chain_id, settings.order, settings.run_length, scheme))
            else:
                found.append(ChainInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3])))

        async with self.lock:
            await self.transaction(work, join_bulk=True)
            self._registry.chains[key] = found[0]
        return found[0]

    async def add_author(
        self, platform: str, guild: str, external_id: str, *, consented: bool = False
    ) -> int | None:
        """A new author's internal id (unless another process just made it); SQLite's, as add_chain.

        consented: only while the member's consent is recorded (None once a forget removed it).
        """
        key = (platform, guild, external_id)
        made: list[int] = []
        sql, q = self._sql, self._q

        async def work() -> None:
            made.clear()
            row = await sql.fetchone(q["author_by_key"], key)
            if row is not None:
                made.append(int(row[0]))
            elif not consented or await sql.fetchone(q["consent_of"], key) is not None:
                author_id = await self._take_ids("next_author_id", 1)
                await sql.execute(q["insert_author"], (author_id, *key))
                made.append(author_id)

        async with self.lock:
            await self.transaction(work, join_bulk=True)
            if not made:
                return None
            self._registry.authors[key] = made[0]
        return made[0]

    async def _take_ids(self, counter: str, n: int) -> int:
        """Reserve n ids from a counter of the database (SQLite's), inside the open transaction; the first."""
        row = await self._sql.fetchone(self._q["take_ids"], (n, counter))
        assert row is not None, f"the counters table has no {counter}"
        return int(row[0])
