-- markovbot's named statements for PostgreSQL (SQLite's are bot/core/queries.sql).
-- Loaded by bot.core.sql.load_queries("bot.core.postgres") as PQ; each starts at "-- name: ".

-- ---------------------------------------------------------------- migrations (bot/core/postgres/schema.py)

-- name: lock_migrations
-- Held until the migrating transaction ends: a second process waits here, then sees the new version.
SELECT pg_advisory_xact_lock($1);

-- name: has_version_table
SELECT to_regclass('markov_migrations') IS NOT NULL;

-- name: count_tables
-- Tables in the schema the connection works in: a database with tables but no markov_migrations is
-- another program's, and is left alone.
SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema();

-- name: create_version_table
CREATE TABLE markov_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- name: schema_version
SELECT coalesce(max(version), 0) FROM markov_migrations;

-- name: record_migration
INSERT INTO markov_migrations (version, name) VALUES ($1, $2);

-- ---------------------------------------------------------------- guild state (bot/core/postgres/guildstate.py)

-- name: get_consent
SELECT member FROM consent WHERE platform = $1 AND guild = $2;

-- name: add_consent
INSERT INTO consent (platform, guild, member, since) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING;

-- name: remove_consent
DELETE FROM consent WHERE platform = $1 AND guild = $2 AND member = $3;

-- name: get_enabled_channels
SELECT channel FROM enabled_channels WHERE platform = $1 AND guild = $2;

-- name: enable_channel
INSERT INTO enabled_channels (platform, guild, channel, since) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING;

-- name: disable_channel
DELETE FROM enabled_channels WHERE platform = $1 AND guild = $2 AND channel = $3;

-- name: get_settings
SELECT ord, reply_on_mention, chime_chance, run_length, copy_guard
FROM guild_settings WHERE platform = $1 AND guild = $2;

-- name: put_settings
-- Only a real change updates the row (and so tells the other processes).
INSERT INTO guild_settings (platform, guild, ord, reply_on_mention, chime_chance, run_length, copy_guard)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (platform, guild) DO UPDATE SET
    ord = excluded.ord, reply_on_mention = excluded.reply_on_mention,
    chime_chance = excluded.chime_chance, run_length = excluded.run_length,
    copy_guard = excluded.copy_guard
WHERE (guild_settings.ord, guild_settings.reply_on_mention, guild_settings.chime_chance,
       guild_settings.run_length, guild_settings.copy_guard)
    IS DISTINCT FROM (excluded.ord, excluded.reply_on_mention, excluded.chime_chance,
                      excluded.run_length, excluded.copy_guard);

-- name: notify_guild_state
-- A marker through the guild-state channel (GuildState.sync waits for its own).
SELECT pg_notify('markov_guild_state', $1);
