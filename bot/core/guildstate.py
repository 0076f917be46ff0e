"""A guild's state in SQLite: members who opted in, channels where learning is enabled, settings; cached.

The SQLite implementation of bot.core.contracts.GuildStateStore (PostgreSQL: bot.core.postgres.guildstate).
"""

from __future__ import annotations

import time

from bot.core.connections import Connections
from bot.core.models import GuildSettings
from bot.core.sql import Q


class GuildState:
    """Consent, enabled channels and settings per (platform, guild), cached after the first read."""

    def __init__(self, db: Connections) -> None:
        self._db = db
        self._consent: dict[tuple[str, str], set[str]] = {}
        self._channels: dict[tuple[str, str], set[str]] = {}
        self._settings: dict[tuple[str, str], GuildSettings] = {}

    def clear(self) -> None:
        """Forget the caches (read again on use)."""
        self._consent.clear()
        self._channels.clear()
        self._settings.clear()

    def drop_member(self, platform: str, guild: str, member: str) -> None:
        """After a member was forgotten: drop them from the cached consent."""
        self._consent.get((platform, guild), set()).discard(member)

    async def consenting(self, platform: str, guild: str) -> set[str]:
        """Members of a guild who opted in."""
        key = (platform, guild)
        found = self._consent.get(key)
        if found is None:  # kept in a local: a failed transaction may clear the cache meanwhile
            async with self._db.r.execute(Q["get_consent"], key) as cur:
                found = self._consent[key] = {str(row[0]) for row in await cur.fetchall()}
        return found

    async def set_consent(self, platform: str, guild: str, member: str, opted_in: bool) -> bool:
        """Opt a member in or out; True when that changed something."""
        if (member in await self.consenting(platform, guild)) == opted_in:
            return False
        async with self._db.write_lock:
            members = await self.consenting(platform, guild)  # again: a call at the same time may have won
            if (member in members) == opted_in:
                return False
            if opted_in:
                await self._db.w.execute(Q["add_consent"], (platform, guild, member, int(time.time())))
                members.add(member)
            else:
                await self._db.w.execute(Q["remove_consent"], (platform, guild, member))
                members.discard(member)
        return True

    async def enabled_channels(self, platform: str, guild: str) -> set[str]:
        """Channels of a guild where learning is enabled."""
        key = (platform, guild)
        found = self._channels.get(key)
        if found is None:
            async with self._db.r.execute(Q["get_enabled_channels"], key) as cur:
                found = self._channels[key] = {str(row[0]) for row in await cur.fetchall()}
        return found

    async def set_channel(self, platform: str, guild: str, channel: str, enabled: bool) -> bool:
        """Enable or disable learning in a channel; True when that changed something."""
        if (channel in await self.enabled_channels(platform, guild)) == enabled:
            return False
        async with self._db.write_lock:
            channels = await self.enabled_channels(platform, guild)  # again, as in set_consent
            if (channel in channels) == enabled:
                return False
            if enabled:
                await self._db.w.execute(Q["enable_channel"], (platform, guild, channel, int(time.time())))
                channels.add(channel)
            else:
                await self._db.w.execute(Q["disable_channel"], (platform, guild, channel))
                channels.discard(channel)
        return True

    async def settings(self, platform: str, guild: str) -> GuildSettings:
        """A guild's settings (defaults when never changed)."""
        key = (platform, guild)
        found = self._settings.get(key)
        if found is None:
            async with self._db.r.execute(Q["get_settings"], key) as cur:
                row = await cur.fetchone()
            found = self._settings[key] = (
                GuildSettings(int(row[0]), bool(row[1]), float(row[2]), int(row[3]), bool(row[4]))
                if row
                else GuildSettings()
            )
        return found

    async def put_settings(self, platform: str, guild: str, settings: GuildSettings) -> None:
        """Save a guild's settings (validated by the caller)."""
        async with self._db.write_lock:
            await self._db.w.execute(
                Q["put_settings"],
                (
                    platform,
                    guild,
                    settings.order,
                    int(settings.reply_on_mention),
                    settings.chime_chance,
                    settings.run_length,
                    int(settings.copy_guard),
                ),
            )
        self._settings[(platform, guild)] = settings
