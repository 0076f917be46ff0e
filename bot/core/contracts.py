"""The store's parts that each engine implements, as typed contracts (SQLite and PostgreSQL).

A part's callers hold the contract, never an engine's class: the contract tests
(tests/core/test_guildstate_contract.py) run the same checks against every engine.
"""

from __future__ import annotations

from typing import Protocol

from bot.core.models import GuildSettings


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
