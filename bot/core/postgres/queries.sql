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

-- ---------------------------------------------------------------- the copy from SQLite (bot/core/postgres/migrate.py)

-- name: migrate_lock
-- Held until the copy's transaction ends: no other process writes a table meanwhile (a bot on this
-- database, a second copy), while readers go on. Taken before the target is checked for rows.
LOCK TABLE meta, consent, enabled_channels, guild_settings, tokens, authors, chains, messages, recent_messages,
    transitions, windows, hubs, transition_blocks, window_blocks, counters IN EXCLUSIVE MODE;

-- name: migrate_tables_with_rows
-- The tables that hold rows, meta aside (a store that was opened keeps its key's check value there).
SELECT array_remove(ARRAY[
    CASE WHEN EXISTS (SELECT 1 FROM consent) THEN 'consent' END,
    CASE WHEN EXISTS (SELECT 1 FROM enabled_channels) THEN 'enabled_channels' END,
    CASE WHEN EXISTS (SELECT 1 FROM guild_settings) THEN 'guild_settings' END,
    CASE WHEN EXISTS (SELECT 1 FROM tokens) THEN 'tokens' END,
    CASE WHEN EXISTS (SELECT 1 FROM authors) THEN 'authors' END,
    CASE WHEN EXISTS (SELECT 1 FROM chains) THEN 'chains' END,
    CASE WHEN EXISTS (SELECT 1 FROM messages) THEN 'messages' END,
    CASE WHEN EXISTS (SELECT 1 FROM recent_messages) THEN 'recent_messages' END,
    CASE WHEN EXISTS (SELECT 1 FROM transitions) THEN 'transitions' END,
    CASE WHEN EXISTS (SELECT 1 FROM windows) THEN 'windows' END,
    CASE WHEN EXISTS (SELECT 1 FROM hubs) THEN 'hubs' END,
    CASE WHEN EXISTS (SELECT 1 FROM transition_blocks) THEN 'transition_blocks' END,
    CASE WHEN EXISTS (SELECT 1 FROM window_blocks) THEN 'window_blocks' END
], NULL);

-- name: migrate_meta
SELECT key, value FROM meta;

-- name: migrate_clear_meta
-- The key's check value a store left (the same as the copy's, or the copy was refused).
DELETE FROM meta;

-- name: migrate_put_meta
INSERT INTO meta (key, value) VALUES ($1, $2);

-- name: migrate_restart_ids
-- An identity column's next id ($1: the table; its column is id). setval is not undone by a rollback:
-- a copy that fails leaves the sequence ahead, a gap no one reads.
SELECT setval(pg_get_serial_sequence($1, 'id'), $2, false);

-- name: migrate_restart_window_changes
SELECT setval('window_changes', $1, false);

-- name: migrate_set_removals
UPDATE counters SET value = greatest(value, $1) WHERE name = 'removals';

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

-- ---------------------------------------------------------------- registry (bot/core/postgres/registry.py)
-- Orders use COLLATE "C" (code point order), as SQLite's BINARY does: the same lists on both engines.

-- name: chain_by_key
SELECT id, ord, run_length, fingerprint_scheme FROM chains WHERE platform = $1 AND guild = $2 AND channel = $3;

-- name: chain_by_id
SELECT id, ord, run_length, fingerprint_scheme FROM chains WHERE id = $1;

-- name: insert_chain
-- A new chain, unless another process made it first (then nothing is returned and the caller reads
-- that one). It starts at the removals counter, as on SQLite.
INSERT INTO chains (platform, guild, channel, ord, run_length, fingerprint_scheme, removals)
VALUES ($1, $2, $3, $4, $5, $6, (SELECT value FROM counters WHERE name = 'removals'))
ON CONFLICT (platform, guild, channel) DO NOTHING
RETURNING id, ord, run_length, fingerprint_scheme;

-- name: all_chains
SELECT platform, guild, channel, messages_seen, tokens_seen, learned_at
FROM chains ORDER BY platform COLLATE "C", guild COLLATE "C", channel COLLATE "C";

-- name: chains_of_guild
SELECT id FROM chains WHERE platform = $1 AND guild = $2 ORDER BY id;

-- name: chain_author_ids
-- The external ids of a chain's authors, at most $2 of them (markovbot generate --author).
SELECT external_id FROM authors
WHERE id IN (SELECT DISTINCT author_id FROM messages WHERE chain_id = $1)
ORDER BY external_id COLLATE "C" LIMIT $2;

-- name: author_by_key
SELECT id FROM authors WHERE platform = $1 AND guild = $2 AND external_id = $3;

-- name: insert_author
-- A new author, unless another process made it first (then nothing is returned).
INSERT INTO authors (platform, guild, external_id) VALUES ($1, $2, $3)
ON CONFLICT (platform, guild, external_id) DO NOTHING
RETURNING id;

-- ---------------------------------------------------------------- vocabulary (bot/core/postgres/vocabulary.py)

-- name: tokens_by_text
SELECT id, text FROM tokens WHERE text = ANY($1::text[]);

-- name: insert_tokens
-- New tokens in the order given (the caller sorts them, so that every process waits for another's
-- uncommitted rows in one order, never in a cycle), less those another process made first: their
-- insert waits for that process's transaction, then returns nothing and the caller reads them.
INSERT INTO tokens (text, refs)
SELECT t, 0 FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i
ON CONFLICT (text) DO NOTHING
RETURNING id, text;

-- name: lock_tokens
-- The rows whose refs change, locked in id order before the update (two writers touching the same
-- tokens then queue, never deadlock); an id missing here was deleted by another process.
SELECT id FROM tokens WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE;

-- name: add_token_refs
-- One atomic update: refs = refs + n, whatever other writers add meanwhile.
UPDATE tokens SET refs = tokens.refs + u.n
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, n)
WHERE tokens.id = u.id;

-- name: delete_unused_tokens
DELETE FROM tokens WHERE refs <= 0 AND id = ANY($1::bigint[]) RETURNING id, text;

-- name: token_id
SELECT id FROM tokens WHERE text = $1;

-- name: tokens_by_id
SELECT id, text FROM tokens WHERE id = ANY($1::bigint[]);

-- ---------------------------------------------------------------- blocks (bot/core/blockwriter.py, bot/core/postgres/blockrows.py)
-- SQLite's statements of the same names (bot/core/queries.sql); a list of ids is one bigint[].

-- name: lock_blocks
-- Held until the transaction ends: one writer at a time re-cuts a chain's transition blocks
-- (two would each rewrite the same blocks from the same old copy and lose the other's counts).
SELECT pg_advisory_xact_lock(hashtextextended('markov transition_blocks', $1));

-- name: block_index
SELECT id, first FROM transition_blocks WHERE chain_id = $1 AND direction = $2 ORDER BY first;

-- name: block_data
SELECT data FROM transition_blocks WHERE id = ANY($1::bigint[]) ORDER BY first;

-- name: block_all
SELECT data FROM transition_blocks WHERE chain_id = $1 AND direction = $2 ORDER BY first;

-- name: block_range
-- The blocks that may hold keys from $3 to $4: the last starting at or before $3, and those after it up to $4.
SELECT data FROM transition_blocks WHERE chain_id = $1 AND direction = $2 AND first <= $4
AND first >= coalesce((SELECT first FROM transition_blocks
                       WHERE chain_id = $1 AND direction = $2 AND first <= $3
                       ORDER BY first DESC LIMIT 1), '\x'::bytea)  -- max(bytea) does not exist
ORDER BY first;

-- name: delete_block
DELETE FROM transition_blocks WHERE id = $1;

-- name: insert_block
INSERT INTO transition_blocks (chain_id, direction, first, entries, data) VALUES ($1, $2, $3, $4, $5);

-- name: delete_chain_blocks
DELETE FROM transition_blocks WHERE chain_id = $1;

-- name: window_lock_blocks
SELECT pg_advisory_xact_lock(hashtextextended('markov window_blocks', $1));

-- name: window_block_index
SELECT id, first FROM window_blocks WHERE chain_id = $1 AND direction = $2 ORDER BY first;

-- name: window_block_data
SELECT data FROM window_blocks WHERE id = ANY($1::bigint[]) ORDER BY first;

-- name: window_block_all
SELECT data FROM window_blocks WHERE chain_id = $1 AND direction = $2 ORDER BY first;

-- name: window_delete_block
DELETE FROM window_blocks WHERE id = $1;

-- name: window_insert_block
INSERT INTO window_blocks (chain_id, direction, first, entries, data) VALUES ($1, $2, $3, $4, $5);

-- name: window_delete_chain_blocks
DELETE FROM window_blocks WHERE chain_id = $1;

-- name: window_take_version
-- A new value for a chain's window_version (migration 0003's sequence: never waits for another writer).
SELECT nextval('window_changes');

-- name: window_set_version
UPDATE chains SET window_version = $1 WHERE id = $2;
