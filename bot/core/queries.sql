-- Named statements used by bot/core/store.py. Each starts with "-- name: NAME".
-- Lists are passed as one JSON array parameter and read with json_each, so every
-- statement is static text.

-- name: get_meta
SELECT value FROM meta WHERE key = ?;

-- name: set_meta
INSERT INTO meta (key, value) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: delete_meta
DELETE FROM meta WHERE key = ?;

-- name: table_names
SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%';

-- name: take_ids
-- Reserves ?1 ids of the counter named ?2 (next_token_id, next_author_id, next_chain_id) inside
-- the write transaction; returns the first.
UPDATE counters SET value = value + ?1 WHERE name = ?2 RETURNING value - ?1;

-- name: existing_chains
SELECT id FROM chains WHERE id IN (SELECT value FROM json_each(?));

-- name: existing_authors
SELECT id FROM authors WHERE id IN (SELECT value FROM json_each(?));

-- name: bump_removals
UPDATE counters SET value = value + 1 WHERE name = 'removals' RETURNING value;

-- name: mark_removal
UPDATE chains SET removals = ? WHERE id = ?;

-- name: chain_removals
SELECT removals FROM chains WHERE id = ?;

-- name: tokens_by_text
SELECT id, text FROM tokens WHERE text IN (SELECT value FROM json_each(?));

-- name: tokens_by_id
SELECT id, text FROM tokens WHERE id IN (SELECT value FROM json_each(?));

-- name: token_id
SELECT id FROM tokens WHERE text = ?;

-- name: insert_token
INSERT INTO tokens (id, text, refs) VALUES (?, ?, 0);

-- name: add_token_refs
UPDATE tokens SET refs = refs + ? WHERE id = ?;

-- name: delete_unused_tokens
DELETE FROM tokens WHERE refs <= 0 AND id IN (SELECT value FROM json_each(?)) RETURNING id, text;

-- name: chain_by_key
SELECT id, ord, run_length, fingerprint_scheme FROM chains WHERE platform = ? AND guild = ? AND channel = ?;

-- name: chain_by_id
SELECT id, ord, run_length, fingerprint_scheme FROM chains WHERE id = ?;

-- name: unmerged_chains
-- Chains with counts in a delta (merged into their blocks while the writer is idle, bot/core/rolling.py).
SELECT id, ord FROM chains
WHERE EXISTS (SELECT 1 FROM transitions WHERE chain_id = chains.id)
   OR EXISTS (SELECT 1 FROM transitions_back WHERE chain_id = chains.id)
   OR EXISTS (SELECT 1 FROM windows WHERE chain_id = chains.id)
ORDER BY id;

-- name: incomplete_chains_of_guild
-- The chains a forget scans whatever the member's message rows say (migration 0013).
SELECT id FROM chains WHERE platform = ? AND guild = ? AND rows_incomplete != 0;

-- name: insert_chain
-- A new chain starts at the removals counter: a chain id freed by a reset and taken again never
-- shows a walker the removals value it cached the old chain under.
INSERT INTO chains (id, platform, guild, channel, ord, run_length, fingerprint_scheme, removals)
VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT value FROM counters WHERE name = 'removals'));

-- name: chain_counters
SELECT messages_seen, tokens_seen, chars_seen, bytes_seen FROM chains WHERE id = ?;

-- name: add_chain_counters
UPDATE chains SET messages_seen = messages_seen + ?, tokens_seen = tokens_seen + ?,
                  chars_seen = chars_seen + ?, bytes_seen = bytes_seen + ?
WHERE id = ?;

-- name: delete_chain
DELETE FROM chains WHERE id = ?;

-- name: author_by_key
SELECT id FROM authors WHERE platform = ? AND guild = ? AND external_id = ?;

-- name: insert_author
INSERT INTO authors (id, platform, guild, external_id) VALUES (?, ?, ?, ?);

-- name: delete_author
DELETE FROM authors WHERE id = ?;

-- name: upsert_transition
INSERT INTO transitions (chain_id, ctx, next_id, author_id, count) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (chain_id, ctx, next_id, author_id) DO UPDATE SET count = count + excluded.count;

-- name: upsert_transition_back
INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (chain_id, next_id, rest, author_id) DO UPDATE SET count = count + excluded.count;

-- name: upsert_window
INSERT INTO windows (chain_id, fingerprint, author_id, count) VALUES (?, ?, ?, ?)
ON CONFLICT (chain_id, fingerprint, author_id) DO UPDATE SET count = count + excluded.count;

-- name: subtract_transition
UPDATE transitions SET count = count - ?
WHERE chain_id = ? AND ctx = ? AND next_id = ? AND author_id = ?;

-- name: subtract_transition_back
UPDATE transitions_back SET count = count - ?
WHERE chain_id = ? AND next_id = ? AND rest = ? AND author_id = ?;

-- name: subtract_window
UPDATE windows SET count = count - ? WHERE chain_id = ? AND fingerprint = ? AND author_id = ?;

-- name: prune_transition
DELETE FROM transitions
WHERE chain_id = ? AND ctx = ? AND next_id = ? AND author_id = ? AND count <= 0;

-- name: prune_transition_back
DELETE FROM transitions_back
WHERE chain_id = ? AND next_id = ? AND rest = ? AND author_id = ? AND count <= 0;

-- name: prune_window
DELETE FROM windows WHERE chain_id = ? AND fingerprint = ? AND author_id = ? AND count <= 0;

-- name: forget_author_transitions
-- No index by author: forgetting scans the chain once (rare, and one transaction).
DELETE FROM transitions WHERE chain_id = ? AND author_id = ? RETURNING ctx, next_id, count;

-- name: delete_author_transitions_back
DELETE FROM transitions_back WHERE chain_id = ? AND author_id = ?;

-- name: delete_author_windows
DELETE FROM windows WHERE chain_id = ? AND author_id = ?;

-- name: chain_token_refs
SELECT next_id, sum(count) FROM transitions WHERE chain_id = ? AND next_id > 1 GROUP BY next_id;

-- name: delete_chain_transitions
DELETE FROM transitions WHERE chain_id = ?;

-- name: delete_chain_transitions_back
DELETE FROM transitions_back WHERE chain_id = ?;

-- name: delete_chain_windows
DELETE FROM windows WHERE chain_id = ?;

-- name: delete_chain_hubs
DELETE FROM hubs WHERE chain_id = ?;

-- name: all_hubs
SELECT chain_id, ctx FROM hubs;

-- name: hubs_of_chain
SELECT ctx FROM hubs WHERE chain_id = ?;

-- name: hub
SELECT next_ids, counts FROM hubs WHERE chain_id = ? AND ctx = ?;

-- name: put_hub
INSERT INTO hubs (chain_id, ctx, next_ids, counts) VALUES (?, ?, ?, ?)
ON CONFLICT (chain_id, ctx) DO UPDATE SET next_ids = excluded.next_ids, counts = excluded.counts;

-- name: create_hub_candidates
CREATE TEMP TABLE IF NOT EXISTS hub_candidates (chain_id INTEGER NOT NULL, ctx BLOB NOT NULL);

-- name: add_hub_candidate
INSERT INTO temp.hub_candidates (chain_id, ctx) VALUES (?, ?);

-- name: hub_candidate_rows
-- Each candidate's transition rows, counted up to ? (a hub's threshold; counting stops there).
SELECT chain_id, ctx, (SELECT count(*) FROM (SELECT 1 FROM transitions AS t
                                             WHERE t.chain_id = c.chain_id AND t.ctx = c.ctx LIMIT ?))
FROM temp.hub_candidates AS c;

-- name: clear_hub_candidates
DELETE FROM temp.hub_candidates;

-- name: delete_chain_messages
DELETE FROM messages WHERE chain_id = ?;

-- name: known_message_keys
-- Messages are keyed by message_key(platform, message_id) (bot/core/messagekeys.py).
SELECT id FROM messages WHERE id IN (SELECT value FROM json_each(?));

-- name: message_by_key
-- A learned message's chain, author and fingerprint; its chain's row read in the same statement (a
-- reset committed meanwhile took both or neither).
SELECT m.chain_id, c.ord, c.run_length, c.fingerprint_scheme, m.author_id, m.fingerprint
FROM messages AS m JOIN chains AS c ON c.id = m.chain_id
WHERE m.id = ?;

-- name: insert_message
INSERT INTO messages (id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: delete_message
DELETE FROM messages WHERE id = ?;

-- name: lock_message
-- An unlearn's message (PostgreSQL locks it: two processes never subtract it twice).
SELECT chain_id, author_id, fingerprint FROM messages WHERE id = ?;

-- name: lock_author
-- The first statement of a forget (PostgreSQL locks the row: learners elsewhere wait, see existing_authors).
SELECT id FROM authors WHERE id = ?;

-- name: lock_chain
-- The first statement of a reset (as lock_author).
SELECT id FROM chains WHERE id = ?;

-- name: author_message_totals
-- A member's messages in each chain of their guild (an author id is of one guild), in one scan
-- of the table: no index by author (18 bytes a message; this scan takes 0.2 s at 1,000,000).
SELECT chain_id, count(*), sum(tokens), sum(chars), sum(bytes)
FROM messages WHERE author_id = ? GROUP BY chain_id;

-- name: delete_author_messages
DELETE FROM messages WHERE author_id = ?;

-- name: successors
SELECT next_id, sum(count) FROM transitions WHERE chain_id = ? AND ctx = ?
GROUP BY next_id ORDER BY next_id;


-- name: block_index
-- Transition blocks (bot/core/blocks.py) of a chain in one direction, in key order.
SELECT id, first FROM transition_blocks WHERE chain_id = ? AND direction = ? ORDER BY first;

-- name: block_range
-- The blocks that may hold keys from ?3 to ?4: the last starting at or before ?3, and those after it up to ?4.
SELECT data FROM transition_blocks WHERE chain_id = ?1 AND direction = ?2 AND first <= ?4
AND first >= coalesce((SELECT max(first) FROM transition_blocks
                       WHERE chain_id = ?1 AND direction = ?2 AND first <= ?3), x'')
ORDER BY first;

-- name: successors_read
-- A walk step in one statement (one snapshot, where it took five statements): the forward blocks
-- that may hold keys from ?2 to ?3 (as block_range), and the delta rows of context ?4. In no order:
-- the caller sorts the few blocks (an ORDER BY here sorted both parts in temporary B-trees).
SELECT 0 AS part, id, first, data, NULL AS ctx, NULL AS next_id, NULL AS author_id, NULL AS count
FROM transition_blocks WHERE chain_id = ?1 AND direction = 0 AND first <= ?3
AND first >= coalesce((SELECT max(first) FROM transition_blocks
                       WHERE chain_id = ?1 AND direction = 0 AND first <= ?2), x'')
UNION ALL
SELECT 1, NULL, NULL, NULL, NULL, next_id, author_id, count FROM transitions WHERE chain_id = ?1 AND ctx = ?4;

-- name: predecessors_read
-- As successors_read, backward: the backward blocks that may hold keys from ?2 to ?3, and the
-- backward delta's rows into ?4 from contexts ending in ?5 (?6: ?5 followed by x'FFFFFFFF').
SELECT 0 AS part, id, first, data, NULL AS ctx, NULL AS next_id, NULL AS author_id, NULL AS count
FROM transition_blocks WHERE chain_id = ?1 AND direction = 1 AND first <= ?3
AND first >= coalesce((SELECT max(first) FROM transition_blocks
                       WHERE chain_id = ?1 AND direction = 1 AND first <= ?2), x'')
UNION ALL
SELECT 1, NULL, NULL, NULL, rest, next_id, author_id, count FROM transitions_back
WHERE chain_id = ?1 AND next_id = ?4 AND rest >= ?5 AND rest <= ?6;

-- name: block_range_index
SELECT id, first FROM transition_blocks WHERE chain_id = ?1 AND direction = ?2 AND first <= ?4
AND first >= coalesce((SELECT max(first) FROM transition_blocks
                       WHERE chain_id = ?1 AND direction = ?2 AND first <= ?3), x'')
ORDER BY first;

-- name: block_data_by_id
SELECT id, data FROM transition_blocks WHERE id IN (SELECT value FROM json_each(?));

-- name: block_all
SELECT data FROM transition_blocks WHERE chain_id = ? AND direction = ? ORDER BY first;

-- name: block_slice
-- Up to ?4 blocks of a chain in one direction from the one that holds key ?3 on (the rolling merge's
-- next slice), with their entries.
SELECT id, first, entries FROM transition_blocks WHERE chain_id = ?1 AND direction = ?2
AND first >= coalesce((SELECT max(first) FROM transition_blocks
                       WHERE chain_id = ?1 AND direction = ?2 AND first <= ?3), x'')
ORDER BY first LIMIT ?4;

-- name: block_data
SELECT data FROM transition_blocks WHERE id IN (SELECT value FROM json_each(?)) ORDER BY first;

-- name: delete_block
DELETE FROM transition_blocks WHERE id = ?;

-- name: insert_block
INSERT INTO transition_blocks (chain_id, direction, first, entries, data) VALUES (?, ?, ?, ?, ?);

-- name: update_block
-- A block rewritten in place by a forget (same id: readers that cache blocks drop them on removals).
UPDATE transition_blocks SET first = ?, entries = ?, data = ? WHERE id = ?;

-- name: update_block_data
-- As update_block, its first key kept: the unique index on the key is left alone (most blocks of a forget).
UPDATE transition_blocks SET entries = ?, data = ? WHERE id = ?;

-- name: delete_chain_blocks
DELETE FROM transition_blocks WHERE chain_id = ?;

-- name: window_block_index
-- Window blocks (bot/core/blocks.py, kind WINDOWS): the statements above, over window_blocks.
SELECT id, first FROM window_blocks WHERE chain_id = ? AND direction = ? ORDER BY first;

-- name: window_block_candidates
-- The blocks that may hold the window key ?2 (8 bytes; a block's first is a key and 4 bytes more),
-- with their firsts: from the last starting before it to the last starting at it (?3: ?2 and 8 bytes
-- 0xff, above every first that starts with it; bot/core/windowrows.py).
SELECT id, first FROM window_blocks WHERE chain_id = ?1 AND direction = 0 AND first < ?3
AND first >= coalesce((SELECT max(first) FROM window_blocks
                       WHERE chain_id = ?1 AND direction = 0 AND first < ?2), x'');

-- name: window_block_slice
SELECT id, first, entries FROM window_blocks WHERE chain_id = ?1 AND direction = ?2
AND first >= coalesce((SELECT max(first) FROM window_blocks
                       WHERE chain_id = ?1 AND direction = ?2 AND first <= ?3), x'')
ORDER BY first LIMIT ?4;

-- name: window_block_data
SELECT data FROM window_blocks WHERE id IN (SELECT value FROM json_each(?)) ORDER BY first;

-- name: window_block_data_by_id
SELECT id, data FROM window_blocks WHERE id IN (SELECT value FROM json_each(?));

-- name: window_block_all
SELECT data FROM window_blocks WHERE chain_id = ? AND direction = ? ORDER BY first;

-- name: window_delete_block
DELETE FROM window_blocks WHERE id = ?;

-- name: window_insert_block
INSERT INTO window_blocks (chain_id, direction, first, entries, data) VALUES (?, ?, ?, ?, ?);

-- name: window_update_block
-- As update_block: a forget rewrites a window block in place.
UPDATE window_blocks SET first = ?, entries = ?, data = ? WHERE id = ?;

-- name: window_update_block_data
UPDATE window_blocks SET entries = ?, data = ? WHERE id = ?;

-- name: window_delete_chain_blocks
DELETE FROM window_blocks WHERE chain_id = ?;

-- name: window_version
-- What a reader's copy of a chain's window block index is current with (a new value at every change).
SELECT window_version FROM chains WHERE id = ?;

-- name: window_take_version
-- The next value of the window_changes counter, inside the write transaction (take_ids' statement
-- for one id; bot.core.blockwriter names it per kind, as PostgreSQL's takes it from a sequence).
UPDATE counters SET value = value + 1 WHERE name = 'window_changes' RETURNING value - 1;

-- name: window_set_version
-- A value of the window_changes counter, taken as the chain's window blocks change (a reader that
-- cached their index then reads it again).
UPDATE chains SET window_version = ? WHERE id = ?;

-- name: window_delta_all
SELECT fingerprint, author_id, count FROM windows WHERE chain_id = ?;

-- name: window_delta_of
SELECT fingerprint, author_id, count FROM windows
WHERE chain_id = ? AND fingerprint IN (SELECT value FROM json_each(?));

-- name: window_delta_count
SELECT count FROM windows WHERE chain_id = ? AND fingerprint = ? AND author_id = ?;

-- name: delta_count
SELECT count FROM transitions WHERE chain_id = ? AND ctx = ? AND next_id = ? AND author_id = ?;

-- name: back_delta_count
SELECT count FROM transitions_back WHERE chain_id = ? AND next_id = ? AND rest = ? AND author_id = ?;


-- name: delta_range
-- Delta rows of contexts from ?2 up to (not including) ?3, in key order.
SELECT ctx, next_id, author_id, count FROM transitions WHERE chain_id = ?1 AND ctx >= ?2 AND ctx < ?3
ORDER BY ctx, next_id, author_id;

-- name: delta_into
-- The backward delta's rows into a token: (rest, next, author, count); rest is the context rotated
-- left by one token (migration 0012).
SELECT rest, next_id, author_id, count FROM transitions_back WHERE chain_id = ? AND next_id = ?;

-- name: delta_into_suffix
-- As delta_into, from contexts whose last n-1 tokens are ?3 (?4: ?3 followed by x'FFFFFFFF').
SELECT rest, next_id, author_id, count FROM transitions_back
WHERE chain_id = ?1 AND next_id = ?2 AND rest >= ?3 AND rest <= ?4;

-- name: back_delta_all
SELECT rest, next_id, author_id, count FROM transitions_back WHERE chain_id = ?;

-- name: delta_all
SELECT ctx, next_id, author_id, count FROM transitions WHERE chain_id = ?;

-- name: take_delta_range
-- A key range of a chain's forward delta, read and deleted at once (bot/core/rolling.py merges it
-- into the forward blocks): keys from (?2, ?3, ?4) up to, not including, (?5, ?6, ?7).
DELETE FROM transitions WHERE chain_id = ?1
AND (ctx, next_id, author_id) >= (?2, ?3, ?4) AND (ctx, next_id, author_id) < (?5, ?6, ?7)
RETURNING ctx, next_id, author_id, count;

-- name: take_back_delta_range
DELETE FROM transitions_back WHERE chain_id = ?1
AND (next_id, rest, author_id) >= (?2, ?3, ?4) AND (next_id, rest, author_id) < (?5, ?6, ?7)
RETURNING rest, next_id, author_id, count;

-- name: take_window_delta_range
DELETE FROM windows WHERE chain_id = ?1
AND (fingerprint, author_id) >= (?2, ?3) AND (fingerprint, author_id) < (?4, ?5)
RETURNING fingerprint, author_id, count;

-- name: rows_back_delta
SELECT count(*) FROM transitions_back WHERE chain_id = ?;

-- name: rows_window_delta
SELECT count(*) FROM windows WHERE chain_id = ?;


-- name: message_fingerprint_exists
-- Chains of fingerprint scheme 1 (normal IS NULL: the partial index messages_by_fingerprint).
SELECT 1 FROM messages WHERE chain_id = ? AND fingerprint = ? AND normal IS NULL LIMIT 1;

-- name: chain_order
SELECT ord FROM chains WHERE id = ?;

-- name: chain_message_fingerprints
-- The fingerprint-guided attack (bot/core/attack.py): every learned message's fingerprint.
SELECT fingerprint FROM messages WHERE chain_id = ?;

-- name: windows_present
-- The delta's part of the copy guard's K-run lookup (bot/core/windowrows.py reads the blocks).
SELECT DISTINCT fingerprint FROM windows
WHERE chain_id = ? AND fingerprint IN (SELECT value FROM json_each(?));

-- name: member_totals
SELECT count(*), coalesce(sum(m.tokens), 0), count(DISTINCT m.chain_id)
FROM messages AS m JOIN chains AS c ON c.id = m.chain_id
WHERE c.platform = ? AND c.guild = ? AND m.author_id = ?;

-- name: get_consent
SELECT member FROM consent WHERE platform = ? AND guild = ?;

-- name: add_consent
INSERT OR IGNORE INTO consent (platform, guild, member, since) VALUES (?, ?, ?, ?);

-- name: remove_consent
DELETE FROM consent WHERE platform = ? AND guild = ? AND member = ?;

-- name: consent_of
SELECT 1 FROM consent WHERE platform = ? AND guild = ? AND member = ?;

-- name: get_enabled_channels
SELECT channel FROM enabled_channels WHERE platform = ? AND guild = ?;

-- name: enable_channel
INSERT OR IGNORE INTO enabled_channels (platform, guild, channel, since) VALUES (?, ?, ?, ?);

-- name: disable_channel
DELETE FROM enabled_channels WHERE platform = ? AND guild = ? AND channel = ?;

-- name: get_settings
SELECT ord, reply_on_mention, chime_chance, run_length, copy_guard
FROM guild_settings WHERE platform = ? AND guild = ?;

-- name: put_settings
INSERT INTO guild_settings (platform, guild, ord, reply_on_mention, chime_chance, run_length, copy_guard)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (platform, guild) DO UPDATE SET
    ord = excluded.ord, reply_on_mention = excluded.reply_on_mention,
    chime_chance = excluded.chime_chance, run_length = excluded.run_length,
    copy_guard = excluded.copy_guard;




-- name: rows_delta
SELECT count(*) FROM transitions WHERE chain_id = ?;

-- name: block_bytes
SELECT (SELECT sum(length(data)) FROM transition_blocks WHERE chain_id = ?), (SELECT sum(length(data)) FROM transition_blocks);

-- name: rows_windows
-- A chain's window entries: delta rows and block entries (a key in both counts twice until merged).
SELECT (SELECT count(*) FROM windows WHERE chain_id = ?1)
     + (SELECT coalesce(sum(entries), 0) FROM window_blocks WHERE chain_id = ?1);

-- name: table_rows
SELECT (SELECT count(*) FROM transitions),
       (SELECT count(*) FROM windows) + (SELECT coalesce(sum(entries), 0) FROM window_blocks),
       (SELECT count(*) FROM messages), (SELECT count(*) FROM tokens);

-- name: table_bytes
SELECT name, sum(pgsize) FROM dbstat WHERE aggregate = TRUE GROUP BY name;

-- name: message_multiplicity
-- How often each given fingerprint was learned in a chain of scheme 1, and by how many authors.
SELECT fingerprint, count(*), count(DISTINCT author_id) FROM messages
WHERE chain_id = ? AND fingerprint IN (SELECT value FROM json_each(?)) AND normal IS NULL GROUP BY fingerprint;

-- name: learned_fingerprints
-- Which of these exact fingerprints (a JSON array) a chain learned: a report's candidates checked at
-- once, in one read of the table (under scheme 2 no index is by exact fingerprint).
SELECT DISTINCT fingerprint FROM messages
WHERE +chain_id = ?1 AND fingerprint IN (SELECT value FROM json_each(?2));

-- name: report_messages
-- Distinct learned messages (by exact fingerprint: scheme 1) in all and longer than the order (?4),
-- each split into said once (1-eidetic) and common (said at least ?2 times, or by ?3 authors).
-- The chain's rows are read in table order and sorted (+chain_id: not through an index, whose
-- lookups into the table cost 4x at 1,000,000 messages).
SELECT count(*), total(times = 1), total(times >= ?2 OR authors >= ?3),
       total(long), total(long AND times = 1), total(long AND (times >= ?2 OR authors >= ?3))
FROM (SELECT count(*) AS times, count(DISTINCT author_id) AS authors, max(tokens) > ?4 AS long
      FROM (SELECT fingerprint, author_id, tokens FROM messages WHERE +chain_id = ?1 ORDER BY fingerprint)
      GROUP BY fingerprint);

-- name: report_normal_messages
-- The same under scheme 2: distinct exact messages (variants), each counted as often as its
-- normalised form was learned (a message said once is said once in every form). The chain's rows
-- are read in table order and grouped by form; only the forms said more than once are read again
-- (no index by form: each form's fingerprint is kept among the windows, bot/core/counting.py) for
-- their distinct authors and variants. At 1,000,000 messages 1.3-1.4 s (with an index by form
-- 1.0-1.3; count(DISTINCT) in every group of one scan 5.0-5.3, window functions over it 2.5-2.6).
WITH said AS MATERIALIZED (SELECT normal, count(*) AS times, max(tokens) > ?4 AS long
                           FROM messages WHERE +chain_id = ?1 GROUP BY normal),
many AS (SELECT count(*) AS times, count(DISTINCT author_id) AS authors, count(DISTINCT fingerprint) AS variants,
                count(DISTINCT CASE WHEN tokens > ?4 THEN fingerprint END) AS long_variants
         FROM messages WHERE +chain_id = ?1 AND normal IN (SELECT normal FROM said WHERE times > 1)
         GROUP BY normal)
SELECT total(variants), total(times = 1), total(CASE WHEN times >= ?2 OR authors >= ?3 THEN variants END),
       total(long_variants), total(CASE WHEN times = 1 THEN long_variants END),
       total(CASE WHEN times >= ?2 OR authors >= ?3 THEN long_variants END)
FROM (SELECT times, 1 AS authors, 1 AS variants, long AS long_variants FROM said WHERE times = 1
      UNION ALL
      SELECT times, authors, variants, long_variants FROM many);

-- name: all_chains
SELECT platform, guild, channel, messages_seen, tokens_seen, learned_at
FROM chains ORDER BY platform, guild, channel;

-- name: chain_learned_at
UPDATE chains SET learned_at = ? WHERE id = ?;

-- name: chain_author_ids
-- The external ids of a chain's authors, at most ? of them (markovbot generate --author).
SELECT external_id FROM authors
WHERE id IN (SELECT DISTINCT author_id FROM messages WHERE chain_id = ?)
ORDER BY external_id LIMIT ?;

-- name: insert_recent
INSERT INTO recent_messages (id, chain_id, author_id, learned_at, token_ids) VALUES (?, ?, ?, ?, ?);

-- name: recent_message
-- A recent message's tokens, with what its messages row says (both rows exist or neither).
SELECT r.chain_id, c.ord, c.run_length, c.fingerprint_scheme, r.author_id, r.token_ids, m.chars, m.bytes
FROM recent_messages AS r JOIN messages AS m ON m.id = r.id JOIN chains AS c ON c.id = r.chain_id
WHERE r.id = ?;

-- name: delete_recent
DELETE FROM recent_messages WHERE id = ?;

-- name: delete_author_recent
-- A member's recent rows in every chain of their guild, in one scan (no index by author, as messages).
DELETE FROM recent_messages WHERE author_id = ?;

-- name: delete_chain_recent
DELETE FROM recent_messages WHERE chain_id = ?;

-- name: prune_recent
-- At most ?2 of the oldest rows learned before ?1 (bounded work per prune).
DELETE FROM recent_messages WHERE id IN (
    SELECT id FROM recent_messages WHERE learned_at < ?1 ORDER BY learned_at LIMIT ?2
) RETURNING id;

-- name: rows_recent
SELECT count(*), (SELECT count(*) FROM recent_messages) FROM recent_messages WHERE chain_id = ?;

-- name: recent_expired
SELECT 1 FROM recent_messages WHERE learned_at < ? LIMIT 1;

-- ---------------------------------------------------------------- the copy to PostgreSQL (bot/core/postgres/migrate.py)
-- Every table `markovbot migrate` copies, read whole inside one read transaction (a snapshot), each
-- in its key order; a statement's columns are the PostgreSQL table's columns of the same names.
-- counters and sqlite_sequence are not copied: migrate_next_ids turns them into PostgreSQL's sequences;
-- nor are hubs (off on PostgreSQL: see NOT_COPIED in migrate.py).

-- name: migrate_meta
SELECT key, value FROM meta;

-- name: migrate_consent
SELECT platform, guild, member, since FROM consent;

-- name: migrate_enabled_channels
SELECT platform, guild, channel, since FROM enabled_channels;

-- name: migrate_guild_settings
SELECT platform, guild, ord, reply_on_mention, chime_chance, run_length, copy_guard FROM guild_settings;

-- name: migrate_tokens
SELECT id, text, refs FROM tokens;

-- name: migrate_authors
SELECT id, platform, guild, external_id FROM authors;

-- name: migrate_chains
SELECT id, platform, guild, channel, ord, run_length, messages_seen, tokens_seen, chars_seen, bytes_seen,
       removals, fingerprint_scheme, learned_at, window_version, rows_incomplete
FROM chains;

-- name: migrate_messages
SELECT id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes FROM messages;

-- name: migrate_recent_messages
SELECT id, chain_id, author_id, learned_at, token_ids FROM recent_messages;

-- name: migrate_transitions
SELECT chain_id, ctx, next_id, author_id, count FROM transitions;

-- name: migrate_transitions_back
SELECT chain_id, next_id, rest, author_id, count FROM transitions_back;

-- name: migrate_windows
SELECT chain_id, fingerprint, author_id, count FROM windows;

-- name: migrate_transition_blocks
SELECT id, chain_id, direction, first, entries, data FROM transition_blocks;

-- name: migrate_window_blocks
SELECT id, chain_id, direction, first, entries, data FROM window_blocks;

-- name: migrate_row_counts
-- The rows of each table copied, in the order of the statements above (for the progress bar).
SELECT (SELECT count(*) FROM meta), (SELECT count(*) FROM consent), (SELECT count(*) FROM enabled_channels),
       (SELECT count(*) FROM guild_settings), (SELECT count(*) FROM tokens), (SELECT count(*) FROM authors),
       (SELECT count(*) FROM chains), (SELECT count(*) FROM messages), (SELECT count(*) FROM recent_messages),
       (SELECT count(*) FROM transitions), (SELECT count(*) FROM transitions_back),
       (SELECT count(*) FROM windows), (SELECT count(*) FROM transition_blocks), (SELECT count(*) FROM window_blocks);

-- name: migrate_next_ids
-- What PostgreSQL's sequences continue from: the next token, author and chain id (never reused, so the
-- counters' values win over max(id) + 1), the next transition and window block id (sqlite_sequence
-- holds the largest ever used), the next window_changes value, and the removals counter.
SELECT max(2, coalesce((SELECT value FROM counters WHERE name = 'next_token_id'), 2),
              coalesce((SELECT max(id) FROM tokens), 1) + 1),
       max(1, coalesce((SELECT value FROM counters WHERE name = 'next_author_id'), 1),
              coalesce((SELECT max(id) FROM authors), 0) + 1),
       max(1, coalesce((SELECT value FROM counters WHERE name = 'next_chain_id'), 1),
              coalesce((SELECT max(id) FROM chains), 0) + 1),
       max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'transition_blocks'), 0),
           coalesce((SELECT max(id) FROM transition_blocks), 0)) + 1,
       max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'window_blocks'), 0),
           coalesce((SELECT max(id) FROM window_blocks), 0)) + 1,
       max(1, coalesce((SELECT value FROM counters WHERE name = 'window_changes'), 1),
              coalesce((SELECT max(window_version) FROM chains), 0) + 1),
       coalesce((SELECT value FROM counters WHERE name = 'removals'), 0);

-- name: migrate_removals
-- Bumped by every unlearn, forget and reset: compared before the copy commits (see migrate.py).
SELECT coalesce((SELECT value FROM counters WHERE name = 'removals'), 0);

-- The learning log (bot.core.learnlog): a file of its own beside the database.

-- name: log_schema
CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, sealed BLOB NOT NULL);

-- name: log_append
INSERT INTO entries (seq, sealed) VALUES (?, ?);

-- name: log_entries
SELECT seq, sealed FROM entries WHERE seq > ? ORDER BY seq;

-- name: log_unapplied
SELECT count(*) FROM entries WHERE seq > ?;

-- name: log_last
SELECT coalesce(max(seq), 0) FROM entries;

-- name: log_drop
DELETE FROM entries WHERE seq <= ?;

-- name: log_deferred_schema
CREATE TABLE IF NOT EXISTS deferred (number INTEGER PRIMARY KEY, sealed BLOB NOT NULL);

-- name: log_deferred_count
SELECT count(*) FROM deferred;

-- name: log_deferred_last
SELECT coalesce(max(number), 0) FROM deferred;

-- name: log_defer
INSERT INTO deferred (number, sealed) VALUES (?, ?);

-- name: log_deferred
SELECT number, sealed FROM deferred ORDER BY number;

-- name: log_undefer
DELETE FROM deferred WHERE number = ?;
