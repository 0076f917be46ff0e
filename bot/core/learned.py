"""The store's reads of learned messages and their counters, and the meta table (``store.learned``).

What a learned message left behind, read outside the writer's transaction: its messages row
(chain, author, fingerprint), its recent row (the token ids, sealed, kept for the edit window:
see bot.core.sealed), each with its chain's row in the same statement (a reset committed between
two reads would leave a message without its chain), a chain's and a member's counters, and the
meta table's values. One
implementation for both engines, over the SQL seam (bot.core.writetx.ReaderSql: SQLite's reader
connection, or PostgreSQL's pool); the Store builds it when it opens, once the sealer has its key.
"""

from __future__ import annotations

import asyncio

from bot.core import chain as chainmod
from bot.core.messagekeys import message_key
from bot.core.models import ChainInfo
from bot.core.sealed import Sealer
from bot.core.sqlconn import Row
from bot.core.writetx import ReaderSql


def _chain(row: Row) -> ChainInfo:
    """The chain a message row was read with (its id, order, run length and fingerprint scheme first)."""
    return ChainInfo(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


class Learned:
    """Reads of learned messages, chain and member counters, and the meta table."""

    def __init__(self, reader: ReaderSql, lock: asyncio.Lock, sealer: Sealer) -> None:
        self._reader = reader
        self._lock = lock  # the store's write lock (SQLite's meta writes go through the writer)
        self.sealer = sealer  # opens recent rows

    async def message(self, platform: str, message_id: str) -> tuple[ChainInfo, int, int] | None:
        """(chain, author id, fingerprint) of a learned message, or None."""
        row = await self._reader.fetchone(
            self._reader.statements["message_by_key"], (message_key(platform, message_id),)
        )
        if row is None:
            return None
        return _chain(row), int(row[4]), int(row[5])

    async def recent(
        self, platform: str, message_id: str
    ) -> tuple[ChainInfo, int, list[int] | None, int, int] | None:
        """(chain, author id, token ids, characters, bytes) of a message learned within the window, or None.

        The token ids are None when the sealed row does not open (another key, or moved or altered).
        """
        key = message_key(platform, message_id)
        row = await self._reader.fetchone(self._reader.statements["recent_message"], (key,))
        if row is None:
            return None
        packed = self.sealer.open(key, bytes(row[5]), (platform, message_id))
        ids = list(chainmod.unpack(packed)) if packed is not None else None
        return _chain(row), int(row[4]), ids, int(row[6]), int(row[7])

    async def is_learned(self, platform: str, message_id: str) -> bool:
        """True when a message id was learned (committed)."""
        key = message_key(platform, message_id)
        return await self._reader.fetchone(self._reader.statements["message_by_key"], (key,)) is not None

    async def chain_counters(self, chain_id: int) -> tuple[int, int, int, int]:
        """(messages, tokens, characters, UTF-8 bytes) learned by a chain."""
        row = await self._reader.fetchone(self._reader.statements["chain_counters"], (chain_id,))
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3])) if row else (0, 0, 0, 0)

    async def member_totals(self, platform: str, guild: str, author_id: int) -> tuple[int, int, int]:
        """(messages, tokens, chains) learned from a member in a guild."""
        row = await self._reader.fetchone(
            self._reader.statements["member_totals"], (platform, guild, author_id)
        )
        return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)

    async def get_meta(self, key: str) -> str | None:
        """A value from the meta table."""
        row = await self._reader.fetchone(self._reader.statements["get_meta"], (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        """Store a value in the meta table."""
        async with self._lock:
            await self._reader.execute(self._reader.statements["set_meta"], (key, value))
