"""A second process for the PostgreSQL tests: `python -m tests.core.pg_helper URL ACTION [ARGS]`.

migrate [BARRIER]: open the database (migrating it), after waiting for the test to release the
advisory lock BARRIER (so that several processes start at once); consent PLATFORM GUILD MEMBER in|out; channel PLATFORM
GUILD CHANNEL on|off. Prints what the call returned.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from bot.core.engines import PostgresUrl
from bot.core.postgres import schema
from bot.core.postgres.connections import PgDatabase
from bot.core.postgres.guildstate import GuildState


async def main(url: str, action: str, *args: str) -> None:
    if action == "migrate" and args:
        barrier = await asyncpg.connect(url)
        try:
            await barrier.execute("SELECT pg_advisory_lock_shared($1)", int(args[0]))
        finally:
            await barrier.close()
    db = await PgDatabase.open(PostgresUrl(url))
    try:
        async with db.pool.acquire() as conn:
            version = await schema.version(conn)
        if action == "migrate":
            print(version)
            return
        guilds = GuildState(db)
        platform, guild, what, flag = args
        if action == "consent":
            print(await guilds.set_consent(platform, guild, what, flag == "in"))
        elif action == "channel":
            print(await guilds.set_channel(platform, guild, what, flag == "on"))
        else:
            raise SystemExit(f"unknown action {action!r}")
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
