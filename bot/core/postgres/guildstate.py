"""A guild's state in PostgreSQL: consent, enabled channels and settings, cached until another process changes them.

Several processes share the database, so a cache is only as good as its invalidation: a trigger
on each table notifies ``markov_guild_state`` in the transaction that changes a row (whoever
writes it: a bot process, a forget, psql), and every process listens on a connection of its own
and drops that guild's entries when the notice arrives. A read stores its result only if no
notice arrived while it ran (an epoch counter), and nothing is cached while the listener is down
(it is reopened on the next read). ``sync`` waits until every change committed before the call
has reached this process: PostgreSQL delivers notices in commit order, so the arrival of a
marker sent afterwards means the ones before it have been handled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import asyncpg

from bot.core.contracts import GuildStateStore
from bot.core.models import GuildSettings
from bot.core.postgres.connections import PgDatabase, one_line
from bot.core.postgres.schema import PQ

log = logging.getLogger(__name__)

CHANNEL = "markov_guild_state"  # the channel the trigger of migration 0001 notifies
EVERYTHING = "*"  # a notice that drops every cached entry
SYNC_PREFIX = "sync:"
SYNC_SECONDS = 10.0  # a marker not back by then: every cache is dropped instead (as safe, slower)

Key = tuple[str, str]

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    AnyConnection = asyncpg.Connection[Any] | PoolConnectionProxy[Any]  # what asyncpg hands its listeners


class GuildState:
    """Consent, enabled channels and settings per (platform, guild), cached while the listener is up."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._consent: dict[Key, set[str]] = {}
        self._channels: dict[Key, set[str]] = {}
        self._settings: dict[Key, GuildSettings] = {}
        self._epoch = 0  # bumped by every invalidation: a read that saw it change stores nothing
        self._listener: asyncpg.Connection | None = None
        self._markers: dict[str, asyncio.Future[None]] = {}
        self._closed = False
        self._warned = False

    @property
    def listening(self) -> bool:
        """Whether changes made by other processes reach this one (and so whether reads are cached)."""
        return self._listener is not None

    async def start(self) -> None:
        """Start listening for changes (until it does, nothing is cached)."""
        await self._listen()

    async def close(self) -> None:
        """Stop listening and drop the caches."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.remove_termination_listener(self._lost)
            await listener.close()
        self.clear()

    def clear(self) -> None:
        """Forget the caches (read again on use)."""
        self._epoch += 1
        self._consent.clear()
        self._channels.clear()
        self._settings.clear()
        for marker in self._markers.values():  # nothing is cached: nothing a marker waits for is stale
            if not marker.done():
                marker.set_result(None)

    def drop_member(self, platform: str, guild: str, member: str) -> None:
        """After a member was forgotten: drop the guild's cached consent (the forget's notice does too)."""
        self._drop((platform, guild))

    async def sync(self) -> None:
        """Wait until every change committed before this call (by any process) is seen by this one."""
        if self._listener is None:
            return  # nothing is cached
        marker = f"{SYNC_PREFIX}{secrets.token_hex(8)}"
        arrived = self._markers[marker] = asyncio.get_running_loop().create_future()
        try:
            await self._db.pool.execute(PQ["notify_guild_state"], marker)
            async with asyncio.timeout(SYNC_SECONDS):
                await arrived
        except TimeoutError:
            log.warning("guild state: a change notice took over %.0f s; dropping every cache", SYNC_SECONDS)
            self.clear()
        finally:
            self._markers.pop(marker, None)

    async def consenting(self, platform: str, guild: str) -> set[str]:
        """Members of a guild who opted in."""
        key = (platform, guild)
        found = self._consent.get(key)
        if found is None:
            epoch = await self._read_epoch()
            rows = await self._db.pool.fetch(PQ["get_consent"], platform, guild)
            found = {str(row[0]) for row in rows}
            if epoch == self._epoch:
                self._consent[key] = found
        return found

    async def set_consent(self, platform: str, guild: str, member: str, opted_in: bool) -> bool:
        """Opt a member in or out; True when that changed something (decided by the database, not a cache)."""
        if opted_in:
            args = (platform, guild, member, int(time.time()))
            status = await self._db.pool.execute(PQ["add_consent"], *args)
        else:
            status = await self._db.pool.execute(PQ["remove_consent"], platform, guild, member)
        self._drop((platform, guild))
        return changed(status)

    async def enabled_channels(self, platform: str, guild: str) -> set[str]:
        """Channels of a guild where learning is enabled."""
        key = (platform, guild)
        found = self._channels.get(key)
        if found is None:
            epoch = await self._read_epoch()
            rows = await self._db.pool.fetch(PQ["get_enabled_channels"], platform, guild)
            found = {str(row[0]) for row in rows}
            if epoch == self._epoch:
                self._channels[key] = found
        return found

    async def set_channel(self, platform: str, guild: str, channel: str, enabled: bool) -> bool:
        """Enable or disable learning in a channel; True when that changed something."""
        if enabled:
            args = (platform, guild, channel, int(time.time()))
            status = await self._db.pool.execute(PQ["enable_channel"], *args)
        else:
            status = await self._db.pool.execute(PQ["disable_channel"], platform, guild, channel)
        self._drop((platform, guild))
        return changed(status)

    async def settings(self, platform: str, guild: str) -> GuildSettings:
        """A guild's settings (defaults when never changed)."""
        key = (platform, guild)
        found = self._settings.get(key)
        if found is None:
            epoch = await self._read_epoch()
            row = await self._db.pool.fetchrow(PQ["get_settings"], platform, guild)
            found = (
                GuildSettings(int(row[0]), bool(row[1]), float(row[2]), int(row[3]), bool(row[4]))
                if row
                else GuildSettings()
            )
            if epoch == self._epoch:
                self._settings[key] = found
        return found

    async def put_settings(self, platform: str, guild: str, settings: GuildSettings) -> None:
        """Save a guild's settings (validated by the caller)."""
        await self._db.pool.execute(
            PQ["put_settings"],
            platform,
            guild,
            settings.order,
            settings.reply_on_mention,
            settings.chime_chance,
            settings.run_length,
            settings.copy_guard,
        )
        self._drop((platform, guild))

    # ---------------------------------------------------------------- invalidation

    async def _read_epoch(self) -> int | None:
        """The epoch a read may store its result under; None (never equal) when nothing may be cached."""
        if self._listener is None and not await self._listen():
            return None
        return self._epoch

    async def _listen(self) -> bool:
        """Open the listening connection if it is not open; True when listening."""
        if self._listener is not None:
            return True
        if self._closed:
            return False
        try:
            conn = await self._db.connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._cannot_listen(exc)
            return False
        try:
            await conn.add_listener(CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await conn.close()
            self._cannot_listen(exc)
            return False
        if self._listener is not None or self._closed:  # another read got there first, or closed meanwhile
            await conn.close()
            return self._listener is not None
        conn.add_termination_listener(self._lost)
        self._listener = conn
        self._warned = False
        self.clear()  # what was read before listening is not covered by the notices
        return True

    def _cannot_listen(self, exc: BaseException) -> None:
        level = logging.DEBUG if self._warned else logging.WARNING
        log.log(level, "guild state: cannot listen for changes (%s); reading without a cache", one_line(exc))
        self._warned = True

    def _lost(self, conn: AnyConnection) -> None:
        """The listening connection closed: notices may have been missed, so drop everything."""
        if conn is self._listener:
            self._listener = None
            log.warning("guild state: the listening connection closed; caches dropped, reopened on next read")
        self.clear()

    def _notified(self, conn: AnyConnection, pid: int, channel: str, payload: object) -> None:
        """A change notice (or this process's sync marker) arrived."""
        payload = str(payload)
        if payload.startswith(SYNC_PREFIX):
            marker = self._markers.get(payload)
            if marker is not None and not marker.done():
                marker.set_result(None)
            return
        try:
            platform, guild = json.loads(payload)
        except (ValueError, TypeError):  # EVERYTHING, or a notice this version does not know
            self.clear()
            return
        self._drop((str(platform), str(guild)))

    def _drop(self, key: Key) -> None:
        """Drop one guild's cached entries, and any read of them in flight."""
        self._epoch += 1
        self._consent.pop(key, None)
        self._channels.pop(key, None)
        self._settings.pop(key, None)


def changed(status: str) -> bool:
    """Whether a command's status (e.g. INSERT 0 1, DELETE 0) counts a row."""
    return status.rsplit(" ", 1)[-1] != "0"


if TYPE_CHECKING:
    _conforms: type[GuildStateStore] = GuildState  # mypy checks this part against its contract
