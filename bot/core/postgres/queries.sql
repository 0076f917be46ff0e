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
    CASE WHEN EXISTS (SELECT 1 FROM transitions_back) THEN 'transitions_back' END,
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

-- name: consent_of
SELECT 1 FROM consent WHERE platform = $1 AND guild = $2 AND member = $3;

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

-- name: unmerged_chains
-- Chains with counts in a delta (merged into their blocks while the writer is idle, bot/core/rolling.py).
SELECT id, ord FROM chains
WHERE EXISTS (SELECT 1 FROM transitions WHERE chain_id = chains.id)
   OR EXISTS (SELECT 1 FROM transitions_back WHERE chain_id = chains.id)
   OR EXISTS (SELECT 1 FROM windows WHERE chain_id = chains.id)
ORDER BY id;

-- name: incomplete_chains_of_guild
-- The chains a forget scans whatever the member's message rows say (migration 0006).
SELECT id FROM chains WHERE platform = $1 AND guild = $2 AND rows_incomplete;

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

-- name: insert_consenting_author
-- As insert_author, and only while the member's consent is recorded. The consent row is locked, so
-- a forget deleting it (first thing in its transaction) either waits for this or goes first, when
-- nothing is made.
INSERT INTO authors (platform, guild, external_id)
SELECT $1, $2, $3
WHERE EXISTS (SELECT 1 FROM consent WHERE platform = $1 AND guild = $2 AND member = $3 FOR KEY SHARE)
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

-- ---------------------------------------------------------------- blocks (bot/core/blockwriter.py, tests/core/pg_blockrows.py)
-- SQLite's statements of the same names (bot/core/queries.sql); a list of ids is one bigint[].

-- name: lock_blocks
-- Held until the transaction ends: one writer at a time re-cuts a chain's transition blocks
-- (two would each rewrite the same blocks from the same old copy and lose the other's counts).
SELECT pg_advisory_xact_lock(hashtextextended('markov transition_blocks', $1));

-- name: block_index
SELECT id, first FROM transition_blocks WHERE chain_id = $1 AND direction = $2 ORDER BY first;

-- name: block_slice
-- Up to $4 blocks of a chain in one direction from the one that holds key $3 on (the rolling merge's
-- next slice), with their entries.
SELECT id, first, entries FROM transition_blocks WHERE chain_id = $1 AND direction = $2
AND first >= coalesce((SELECT first FROM transition_blocks
                       WHERE chain_id = $1 AND direction = $2 AND first <= $3
                       ORDER BY first DESC LIMIT 1), '\x'::bytea)
ORDER BY first LIMIT $4;

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

-- name: update_block
-- A block rewritten in place by a forget (same id: readers that cache blocks drop them on removals).
UPDATE transition_blocks SET first = $1, entries = $2, data = $3 WHERE id = $4;

-- name: update_block_data
-- As update_block, its first key kept: the unique index on the key is left alone (most blocks of a forget).
UPDATE transition_blocks SET entries = $1, data = $2 WHERE id = $3;

-- name: delete_chain_blocks
DELETE FROM transition_blocks WHERE chain_id = $1;

-- name: window_lock_blocks
SELECT pg_advisory_xact_lock(hashtextextended('markov window_blocks', $1));

-- name: window_block_index
SELECT id, first FROM window_blocks WHERE chain_id = $1 AND direction = $2 ORDER BY first;

-- name: window_block_candidates
-- The blocks that may hold the window key $2, with their firsts (see the SQLite statement; the
-- walker here reads the block index instead, kept while the blocks are unchanged).
SELECT id, first FROM window_blocks WHERE chain_id = $1 AND direction = 0 AND first < $3
AND first >= coalesce((SELECT first FROM window_blocks
                       WHERE chain_id = $1 AND direction = 0 AND first < $2
                       ORDER BY first DESC LIMIT 1), '\x'::bytea);

-- name: window_block_slice
SELECT id, first, entries FROM window_blocks WHERE chain_id = $1 AND direction = $2
AND first >= coalesce((SELECT first FROM window_blocks
                       WHERE chain_id = $1 AND direction = $2 AND first <= $3
                       ORDER BY first DESC LIMIT 1), '\x'::bytea)
ORDER BY first LIMIT $4;

-- name: window_block_data
SELECT data FROM window_blocks WHERE id = ANY($1::bigint[]) ORDER BY first;

-- name: window_block_all
SELECT data FROM window_blocks WHERE chain_id = $1 AND direction = $2 ORDER BY first;

-- name: window_delete_block
DELETE FROM window_blocks WHERE id = $1;

-- name: window_insert_block
INSERT INTO window_blocks (chain_id, direction, first, entries, data) VALUES ($1, $2, $3, $4, $5);

-- name: window_update_block
-- As update_block: a forget rewrites a window block in place.
UPDATE window_blocks SET first = $1, entries = $2, data = $3 WHERE id = $4;

-- name: window_update_block_data
UPDATE window_blocks SET entries = $1, data = $2 WHERE id = $3;

-- name: window_delete_chain_blocks
DELETE FROM window_blocks WHERE chain_id = $1;

-- name: window_take_version
-- A new value for a chain's window_version (migration 0003's sequence: never waits for another writer).
SELECT nextval('window_changes');

-- name: window_set_version
UPDATE chains SET window_version = $1 WHERE id = $2;

-- ---------------------------------------------------------------- writer (bot/core/writer.py, countwriter.py, hubcache.py)
-- SQLite's statements of the same names (bot/core/queries.sql). Several processes write at once:
-- rows a transaction will change are locked in one order by every writer (keys sorted by the
-- caller), and what another writer must not change under a reader is locked where it is read.

-- name: get_meta
SELECT value FROM meta WHERE key = $1;

-- name: set_meta
INSERT INTO meta (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: add_meta
-- A value set once: a second process racing the first keeps the first's (the caller reads it back).
INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING;

-- name: known_message_keys
SELECT id FROM messages WHERE id = ANY($1::bigint[]);

-- name: existing_chains
-- Locked (KEY SHARE) until the learning transaction ends: a reset elsewhere (lock_chain) waits for
-- it, and a reset that went first has deleted the row, so it is not returned.
SELECT id FROM chains WHERE id = ANY($1::bigint[]) ORDER BY id FOR KEY SHARE;

-- name: existing_authors
-- As existing_chains, against a forget elsewhere (lock_author).
SELECT id FROM authors WHERE id = ANY($1::bigint[]) ORDER BY id FOR KEY SHARE;

-- name: lock_chain
SELECT id FROM chains WHERE id = $1 FOR UPDATE;

-- name: lock_author
SELECT id FROM authors WHERE id = $1 FOR UPDATE;

-- name: lock_message
-- Two processes unlearning one message: the second waits, then finds it gone.
SELECT chain_id, author_id, fingerprint FROM messages WHERE id = $1 FOR UPDATE;

-- name: message_by_key
-- A learned message's chain, author and fingerprint; its chain's row read in the same statement (a
-- reset committed meanwhile took both or neither).
SELECT m.chain_id, c.ord, c.run_length, c.fingerprint_scheme, m.author_id, m.fingerprint
FROM messages AS m JOIN chains AS c ON c.id = m.chain_id
WHERE m.id = $1;

-- name: insert_message
INSERT INTO messages (id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: claim_messages
-- An import's message rows (in key order), less those another writer learned meanwhile (its
-- transaction waited for, then skipped): the ids inserted.
INSERT INTO messages (id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes)
SELECT * FROM unnest(
    $1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::int[], $7::int[], $8::int[]
)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: delete_message
DELETE FROM messages WHERE id = $1;

-- name: author_message_totals
SELECT chain_id, count(*), sum(tokens), sum(chars), sum(bytes)
FROM messages WHERE author_id = $1 GROUP BY chain_id;

-- name: delete_author_messages
DELETE FROM messages WHERE author_id = $1;

-- name: delete_chain_messages
DELETE FROM messages WHERE chain_id = $1;

-- name: member_totals
SELECT count(*), coalesce(sum(m.tokens), 0), count(DISTINCT m.chain_id)
FROM messages AS m JOIN chains AS c ON c.id = m.chain_id
WHERE c.platform = $1 AND c.guild = $2 AND m.author_id = $3;

-- name: insert_recent
INSERT INTO recent_messages (id, chain_id, author_id, learned_at, token_ids) VALUES ($1, $2, $3, $4, $5);

-- name: recent_message
SELECT r.chain_id, c.ord, c.run_length, c.fingerprint_scheme, r.author_id, r.token_ids, m.chars, m.bytes
FROM recent_messages AS r JOIN messages AS m ON m.id = r.id JOIN chains AS c ON c.id = r.chain_id
WHERE r.id = $1;

-- name: delete_recent
DELETE FROM recent_messages WHERE id = $1;

-- name: delete_author_recent
DELETE FROM recent_messages WHERE author_id = $1;

-- name: delete_chain_recent
DELETE FROM recent_messages WHERE chain_id = $1;

-- name: recent_expired
SELECT 1 FROM recent_messages WHERE learned_at < $1 LIMIT 1;

-- name: prune_recent
-- At most $2 of the oldest rows learned before $1; SKIP LOCKED: rows another writer prunes are its own.
DELETE FROM recent_messages WHERE id IN (
    SELECT id FROM recent_messages WHERE learned_at < $1 ORDER BY learned_at LIMIT $2 FOR UPDATE SKIP LOCKED
) RETURNING id;

-- name: bump_removals
UPDATE counters SET value = value + 1 WHERE name = 'removals' RETURNING value;

-- name: mark_removal
UPDATE chains SET removals = $1 WHERE id = $2;

-- name: chain_counters
SELECT messages_seen, tokens_seen, chars_seen, bytes_seen FROM chains WHERE id = $1;

-- name: add_chain_counters
UPDATE chains SET messages_seen = messages_seen + $1, tokens_seen = tokens_seen + $2,
                  chars_seen = chars_seen + $3, bytes_seen = bytes_seen + $4
WHERE id = $5;

-- name: chain_learned_at
-- Never back in time: another writer may have committed a later one.
UPDATE chains SET learned_at = greatest(learned_at, $1) WHERE id = $2;

-- name: delete_chain
DELETE FROM chains WHERE id = $1;

-- name: delete_author
DELETE FROM authors WHERE id = $1;

-- name: upsert_transition
INSERT INTO transitions (chain_id, ctx, next_id, author_id, count) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (chain_id, ctx, next_id, author_id) DO UPDATE SET count = transitions.count + excluded.count;

-- name: upsert_transition_back
INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (chain_id, next_id, rest, author_id) DO UPDATE SET count = transitions_back.count + excluded.count;

-- name: upsert_window
INSERT INTO windows (chain_id, fingerprint, author_id, count) VALUES ($1, $2, $3, $4)
ON CONFLICT (chain_id, fingerprint, author_id) DO UPDATE SET count = windows.count + excluded.count;

-- name: delta_count
-- Locked: a merge elsewhere (take_delta_range) waits, so what is read here is still there to subtract.
SELECT count FROM transitions WHERE chain_id = $1 AND ctx = $2 AND next_id = $3 AND author_id = $4 FOR UPDATE;

-- name: back_delta_count
SELECT count FROM transitions_back WHERE chain_id = $1 AND next_id = $2 AND rest = $3 AND author_id = $4
FOR UPDATE;

-- name: window_delta_count
SELECT count FROM windows WHERE chain_id = $1 AND fingerprint = $2 AND author_id = $3 FOR UPDATE;

-- name: subtract_transition
UPDATE transitions SET count = count - $1
WHERE chain_id = $2 AND ctx = $3 AND next_id = $4 AND author_id = $5;

-- name: subtract_transition_back
UPDATE transitions_back SET count = count - $1
WHERE chain_id = $2 AND next_id = $3 AND rest = $4 AND author_id = $5;

-- name: subtract_window
UPDATE windows SET count = count - $1 WHERE chain_id = $2 AND fingerprint = $3 AND author_id = $4;

-- name: prune_transition
DELETE FROM transitions
WHERE chain_id = $1 AND ctx = $2 AND next_id = $3 AND author_id = $4 AND count <= 0;

-- name: prune_transition_back
DELETE FROM transitions_back
WHERE chain_id = $1 AND next_id = $2 AND rest = $3 AND author_id = $4 AND count <= 0;

-- name: prune_window
DELETE FROM windows WHERE chain_id = $1 AND fingerprint = $2 AND author_id = $3 AND count <= 0;

-- name: forget_author_transitions
DELETE FROM transitions WHERE chain_id = $1 AND author_id = $2 RETURNING ctx, next_id, count;

-- name: delete_author_transitions_back
DELETE FROM transitions_back WHERE chain_id = $1 AND author_id = $2;

-- name: delete_author_windows
DELETE FROM windows WHERE chain_id = $1 AND author_id = $2;

-- name: chain_token_refs
SELECT next_id, sum(count) FROM transitions WHERE chain_id = $1 AND next_id > 1 GROUP BY next_id;

-- name: delete_chain_transitions
DELETE FROM transitions WHERE chain_id = $1;

-- name: delete_chain_transitions_back
DELETE FROM transitions_back WHERE chain_id = $1;

-- name: delete_chain_windows
DELETE FROM windows WHERE chain_id = $1;

-- name: take_delta_range
-- A key range of a chain's forward delta, read and deleted in one statement (bot/core/rolling.py
-- merges it into the forward blocks): a row another writer commits meanwhile is taken whole or left
-- for the next pass, never deleted unread. Keys from ($2, $3, $4) up to, not including, ($5, $6, $7).
DELETE FROM transitions WHERE chain_id = $1
AND (ctx, next_id, author_id) >= ($2, $3, $4) AND (ctx, next_id, author_id) < ($5, $6, $7)
RETURNING ctx, next_id, author_id, count;

-- name: take_back_delta_range
DELETE FROM transitions_back WHERE chain_id = $1
AND (next_id, rest, author_id) >= ($2, $3, $4) AND (next_id, rest, author_id) < ($5, $6, $7)
RETURNING rest, next_id, author_id, count;

-- name: take_window_delta_range
DELETE FROM windows WHERE chain_id = $1
AND (fingerprint, author_id) >= ($2, $3) AND (fingerprint, author_id) < ($4, $5)
RETURNING fingerprint, author_id, count;

-- name: rows_back_delta
SELECT count(*) FROM transitions_back WHERE chain_id = $1;

-- name: rows_window_delta
SELECT count(*) FROM windows WHERE chain_id = $1;

-- name: rows_delta
SELECT count(*) FROM transitions WHERE chain_id = $1;

-- name: successors
SELECT next_id, sum(count) FROM transitions WHERE chain_id = $1 AND ctx = $2
GROUP BY next_id ORDER BY next_id;

-- name: delete_chain_hubs
-- Hubs are off on PostgreSQL (bot/core/hubcache.py): the table stays empty; these keep the names whole.
DELETE FROM hubs WHERE chain_id = $1;

-- name: all_hubs
SELECT chain_id, ctx FROM hubs;

-- name: hub
SELECT next_ids, counts FROM hubs WHERE chain_id = $1 AND ctx = $2;

-- name: put_hub
INSERT INTO hubs (chain_id, ctx, next_ids, counts) VALUES ($1, $2, $3, $4)
ON CONFLICT (chain_id, ctx) DO UPDATE SET next_ids = excluded.next_ids, counts = excluded.counts;

-- ---------------------------------------------------------------- the writer's VACUUM (bot/core/postgres/vacuum.py)

-- name: tables_to_vacuum
-- The churned tables holding $1 dead rows plus $2 times their live rows (the server's counts, as
-- autovacuum reads them: a second or so behind).
SELECT relname::text FROM pg_stat_user_tables
WHERE relid IN ('transition_blocks'::regclass, 'window_blocks'::regclass, 'transitions'::regclass,
                'transitions_back'::regclass, 'windows'::regclass)
AND n_dead_tup >= $1 + $2 * n_live_tup
ORDER BY relname;

-- name: vacuum_transition_blocks
VACUUM (SKIP_LOCKED) transition_blocks;

-- name: vacuum_window_blocks
VACUUM (SKIP_LOCKED) window_blocks;

-- name: vacuum_transitions
VACUUM (SKIP_LOCKED) transitions;

-- name: vacuum_transitions_back
VACUUM (SKIP_LOCKED) transitions_back;

-- name: vacuum_windows
VACUUM (SKIP_LOCKED) windows;

-- ---------------------------------------------------------------- reads (walker, chainrows, windowrows, reports)
-- bot/core/reads.py's statements under SQLite's names (bot/core/queries.sql), with the same columns;
-- a list of ids or fingerprints is one bigint[]. tokens_by_id, block_index, block_all, block_range,
-- window_block_index and window_block_all are above (the same statements serve both sides).

-- name: chain_commits
-- The walker's look at a chain before every call (bot/core/postgres/reads.py, PgReads.commits): its
-- removals, and its learning counters, which every transaction that adds counts to it changes.
SELECT removals, messages_seen, tokens_seen FROM chains WHERE id = $1;

-- name: chain_removals
SELECT removals FROM chains WHERE id = $1;

-- name: hubs_of_chain
SELECT ctx FROM hubs WHERE chain_id = $1;

-- name: message_fingerprint_exists
SELECT 1 FROM messages WHERE chain_id = $1 AND fingerprint = $2 AND normal IS NULL LIMIT 1;

-- name: learned_fingerprints
-- Which of these exact fingerprints a chain learned (SQLite's statement of the name).
SELECT DISTINCT fingerprint FROM messages WHERE chain_id = $1 AND fingerprint = ANY($2::bigint[]);

-- name: message_multiplicity
SELECT fingerprint, count(*), count(DISTINCT author_id) FROM messages
WHERE chain_id = $1 AND fingerprint = ANY($2::bigint[]) AND normal IS NULL GROUP BY fingerprint;

-- name: delta_into
SELECT rest, next_id, author_id, count FROM transitions_back WHERE chain_id = $1 AND next_id = $2;

-- name: delta_into_suffix
SELECT rest, next_id, author_id, count FROM transitions_back
WHERE chain_id = $1 AND next_id = $2 AND rest >= $3 AND rest <= $4;

-- name: back_delta_all
SELECT rest, next_id, author_id, count FROM transitions_back WHERE chain_id = $1;

-- name: delta_all
SELECT ctx, next_id, author_id, count FROM transitions WHERE chain_id = $1;

-- name: delta_range
-- Delta rows of contexts from $2 up to (not including) $3, in key order.
SELECT ctx, next_id, author_id, count FROM transitions WHERE chain_id = $1 AND ctx >= $2 AND ctx < $3
ORDER BY ctx, next_id, author_id;

-- name: block_range_index
SELECT id, first FROM transition_blocks WHERE chain_id = $1 AND direction = $2 AND first <= $4
AND first >= coalesce((SELECT first FROM transition_blocks
                       WHERE chain_id = $1 AND direction = $2 AND first <= $3
                       ORDER BY first DESC LIMIT 1), '\x'::bytea)
ORDER BY first;

-- name: block_data_by_id
SELECT id, data FROM transition_blocks WHERE id = ANY($1::bigint[]);

-- name: window_delta_all
SELECT fingerprint, author_id, count FROM windows WHERE chain_id = $1;

-- name: window_version
SELECT window_version FROM chains WHERE id = $1;

-- name: window_block_data_by_id
SELECT id, data FROM window_blocks WHERE id = ANY($1::bigint[]);

-- name: windows_present
SELECT DISTINCT fingerprint FROM windows WHERE chain_id = $1 AND fingerprint = ANY($2::bigint[]);

-- name: window_delta_of
SELECT fingerprint, author_id, count FROM windows WHERE chain_id = $1 AND fingerprint = ANY($2::bigint[]);

-- name: table_bytes
-- Bytes of each table of the schema with its indexes and TOAST (SQLite's dbstat names indexes apart;
-- here an index's bytes are its table's).
SELECT c.relname::text, pg_total_relation_size(c.oid) FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r';

-- name: table_rows
SELECT (SELECT count(*) FROM transitions),
       (SELECT count(*) FROM windows) + (SELECT coalesce(sum(entries), 0) FROM window_blocks),
       (SELECT count(*) FROM messages), (SELECT count(*) FROM tokens);

-- name: rows_windows
SELECT (SELECT count(*) FROM windows WHERE chain_id = $1)
     + (SELECT coalesce(sum(entries), 0) FROM window_blocks WHERE chain_id = $1);

-- name: rows_recent
SELECT count(*), (SELECT count(*) FROM recent_messages) FROM recent_messages WHERE chain_id = $1;

-- name: block_bytes
SELECT (SELECT sum(octet_length(data)) FROM transition_blocks WHERE chain_id = $1),
       (SELECT sum(octet_length(data)) FROM transition_blocks);

-- name: report_normal_messages
-- SQLite's statement of the name: distinct exact messages (variants), each counted as often as its
-- normalised form was learned; $2 times or $3 authors make a message common, longer: over $4 tokens.
SELECT coalesce(sum(variants), 0)::bigint, count(*) FILTER (WHERE times = 1),
       coalesce(sum(variants) FILTER (WHERE times >= $2 OR authors >= $3), 0)::bigint,
       coalesce(sum(long_variants), 0)::bigint,
       coalesce(sum(long_variants) FILTER (WHERE times = 1), 0)::bigint,
       coalesce(sum(long_variants) FILTER (WHERE times >= $2 OR authors >= $3), 0)::bigint
FROM (SELECT count(*) AS times, count(DISTINCT author_id) AS authors, count(DISTINCT fingerprint) AS variants,
             count(DISTINCT fingerprint) FILTER (WHERE tokens > $4) AS long_variants
      FROM messages WHERE chain_id = $1 GROUP BY normal) AS forms;

-- name: report_messages
-- SQLite's statement of the name: distinct learned messages (scheme 1), in all and longer than $4
-- tokens, each split into said once (1-eidetic) and common ($2 times or $3 authors).
SELECT count(*), count(*) FILTER (WHERE times = 1), count(*) FILTER (WHERE times >= $2 OR authors >= $3),
       count(*) FILTER (WHERE long), count(*) FILTER (WHERE long AND times = 1),
       count(*) FILTER (WHERE long AND (times >= $2 OR authors >= $3))
FROM (SELECT count(*) AS times, count(DISTINCT author_id) AS authors, max(tokens) > $4 AS long
      FROM messages WHERE chain_id = $1 GROUP BY fingerprint) AS said;

-- ---------------------------------------------------------------- one-statement reads (bot/core/chainrows.py, windowrows.py)
-- PostgreSQL only: a read that takes blocks and delta rows in ONE statement sees one committed state
-- (a statement's snapshot, under READ COMMITTED), so it needs no transaction around it: one round
-- trip where BEGIN, the block index, the block data, the delta rows and COMMIT took five.
-- Rows are tagged: part 0 is a block (id, first, data), in key order; part 1 a delta row
-- (ctx, next_id, author_id, count).

-- name: successors_read
-- The forward blocks that may hold keys from $2 to $3 and the delta rows of context $4.
SELECT 0 AS part, id, first, data, NULL::bytea AS ctx, NULL::bigint AS next_id, NULL::bigint AS author_id,
       NULL::bigint AS count
FROM transition_blocks WHERE chain_id = $1 AND direction = 0 AND first <= $3
AND first >= coalesce((SELECT first FROM transition_blocks
                       WHERE chain_id = $1 AND direction = 0 AND first <= $2
                       ORDER BY first DESC LIMIT 1), '\x'::bytea)
UNION ALL
SELECT 1, NULL, NULL, NULL, NULL, next_id, author_id, count FROM transitions WHERE chain_id = $1 AND ctx = $4
ORDER BY part, first;

-- name: predecessors_read
-- The backward blocks that may hold keys from $2 to $3 and the backward delta's rows into $4 from
-- contexts ending in $5 ($6: $5 followed by '\xffffffff'); rest in the ctx column.
SELECT 0 AS part, id, first, data, NULL::bytea AS ctx, NULL::bigint AS next_id, NULL::bigint AS author_id,
       NULL::bigint AS count
FROM transition_blocks WHERE chain_id = $1 AND direction = 1 AND first <= $3
AND first >= coalesce((SELECT first FROM transition_blocks
                       WHERE chain_id = $1 AND direction = 1 AND first <= $2
                       ORDER BY first DESC LIMIT 1), '\x'::bytea)
UNION ALL
SELECT 1, NULL, NULL, NULL, rest, next_id, author_id, count FROM transitions_back
WHERE chain_id = $1 AND next_id = $4 AND rest >= $5 AND rest <= $6
ORDER BY part, first;

-- name: windows_present_read
-- Whether the delta holds any of fingerprints $2, and the chain's window_version, in one snapshot.
SELECT EXISTS (SELECT 1 FROM windows WHERE chain_id = $1 AND fingerprint = ANY($2::bigint[])),
       (SELECT window_version FROM chains WHERE id = $1);
