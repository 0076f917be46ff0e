"""The store's parts that each engine implements, as typed contracts (SQLite and PostgreSQL).

A part's callers hold the contract, never an engine's class: the contract tests
(tests/core/test_*_contract.py) run the same checks against every engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from bot.core.models import ChainInfo, ChainKey, ChainSummary, GuildSettings


class GuildStateStore(Protocol):
    """Consent, enabled channels and settings per (platform, guild)."""

    def clear(self) -> None:
        """Forget any cache (read again on use)."""

    def drop_member(self, platform: str, guild: str, member: str) -> None:
        """After a member was forgotten (their consent deleted by the forget): drop them from any cache."""

    async def consenting(self, platform: str, guild: str) -> set[str]:
        """Members of a guild who opted in."""
        ...

    async def set_consent(self, platform: str, guild: str, member: str, opted_in: bool) -> bool:
        """Opt a member in or out; True when that changed something."""
        ...

    async def enabled_channels(self, platform: str, guild: str) -> set[str]:
        """Channels of a guild where learning is enabled."""
        ...

    async def set_channel(self, platform: str, guild: str, channel: str, enabled: bool) -> bool:
        """Enable or disable learning in a channel; True when that changed something."""
        ...

    async def settings(self, platform: str, guild: str) -> GuildSettings:
        """A guild's settings (defaults when never changed)."""
        ...

    async def put_settings(self, platform: str, guild: str, settings: GuildSettings) -> None:
        """Save a guild's settings (validated by the caller)."""
        ...


class RegistryStore(Protocol):
    """Chains and authors: finding them (cached) and listing them."""

    def clear(self) -> None:
        """Forget any cache (read again on use)."""

    async def find_chain(self, key: ChainKey) -> ChainInfo | None:
        """The chain's row, or None when nothing was ever learned there."""
        ...

    async def chain_by_id(self, chain_id: int) -> ChainInfo:
        """The row of a chain known to exist."""
        ...

    async def all_chains(self) -> list[ChainSummary]:
        """Every chain of the database, with what it has learned, by (platform, guild, channel) in code point order."""
        ...

    async def chain_author_ids(self, chain_id: int, limit: int) -> list[str]:
        """External ids of up to limit authors with messages learned in a chain, in code point order."""
        ...

    async def find_author(self, platform: str, guild: str, external_id: str) -> int | None:
        """The author's internal id, or None."""
        ...


class RegistryWrites(Protocol):
    """Making chains and authors: the database assigns the id, once, whichever process asks first.

    SQLite's writer (bot.core.writer.Writer) makes them in its write transaction; PostgreSQL's
    registry (bot.core.postgres.registry) in a committed statement of its own.
    """

    async def add_chain(self, key: ChainKey, settings: GuildSettings) -> ChainInfo:
        """The chain's row, made with the guild's order and run length unless another process made it."""
        ...

    async def add_author(
        self, platform: str, guild: str, external_id: str, *, consented: bool = False
    ) -> int | None:
        """The author's internal id, made unless another process made it; consented: made only
        while the member's consent is recorded (None once a forget removed it)."""
        ...


class VocabularyStore(Protocol):
    """Token ids and texts, and the tokens' reference counts.

    resolve and add_refs run inside the engine's open write transaction; an id made by a
    transaction that rolls back is never handed out again from a cache.
    """

    def clear(self) -> None:
        """Forget the cached ids (read again on use)."""

    async def resolve(self, texts: Iterable[str], create: bool) -> dict[str, int]:
        """Token ids for texts, creating the missing ones when asked (else they are left out)."""
        ...

    async def add_refs(self, refs: dict[int, int]) -> None:
        """Add to tokens' reference counts (n may be negative), deleting tokens no longer used."""

    async def token_id(self, text: str) -> int | None:
        """The id of a token, or None when it is not in the vocabulary."""
        ...

    async def texts(self, ids: Sequence[int]) -> list[str]:
        """Token texts for ids ("" for an id not in the vocabulary)."""
        ...
