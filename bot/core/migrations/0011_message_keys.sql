-- The messages table keyed by a 64-bit number for (platform, message_id) (Discord's own id, a hash
-- of any other: bot/core/messagekeys.py, the function message_key that the migration runner
-- provides), in a rowid table: the text key of
-- the WITHOUT ROWID table was stored in the table and again in each index entry. messages_by_author
-- goes: forget reads the author's rows in one scan of the table (0.03 s for the totals and 0.2 s for
-- the delete of 10,000 rows at 1,000,000 messages, as through the index). At 1,000,000 imported
-- messages, with the indexes: 124.3 -> 70.5 MB (ids `file:line`; the file 228.3 -> 174.6 MB, 2.99
-- bytes per byte of text), 146.8 -> 71.6 MB (Discord-sized ids).
-- Rows go in key order (pages filled); a key met twice (about 3e-8 at a million) keeps one row.
-- The price: keys are random, so a live commit of 2,000 messages writes one page per message
-- more (200,000 live messages: 2.8 -> 5.4 GB written with recent_messages below; 115 -> 85 MB).
DROP INDEX messages_by_author;
DROP INDEX messages_by_normal;
DROP INDEX messages_by_fingerprint;
ALTER TABLE messages RENAME TO messages_old;

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,  -- message_key(platform, message_id)
    chain_id    INTEGER NOT NULL,
    author_id   INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    normal      INTEGER,
    tokens      INTEGER NOT NULL,
    chars       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL
);

INSERT OR IGNORE INTO messages (id, chain_id, author_id, fingerprint, normal, tokens, chars, bytes)
SELECT message_key(platform, message_id), chain_id, author_id, fingerprint, normal, tokens, chars, bytes
FROM messages_old ORDER BY 1;

DROP TABLE messages_old;
CREATE INDEX messages_by_normal ON messages (chain_id, normal) WHERE normal IS NOT NULL;
CREATE INDEX messages_by_fingerprint ON messages (chain_id, fingerprint) WHERE normal IS NULL;

-- recent_messages keyed the same way, without its index by author (forget and reset scan the
-- window's rows): 202 -> 127 bytes a row at 200,000 live messages with Discord-sized ids. Rows
-- sealed before this migration stay bound to the text id, which every unlearn is given
-- (bot/core/sealed.py opens them so); rows sealed from now are bound to the key.
DROP INDEX recent_messages_by_author;
DROP INDEX recent_messages_by_time;
ALTER TABLE recent_messages RENAME TO recent_messages_old;

CREATE TABLE recent_messages (
    id         INTEGER PRIMARY KEY,  -- message_key(platform, message_id), as messages.id
    chain_id   INTEGER NOT NULL,
    author_id  INTEGER NOT NULL,
    learned_at INTEGER NOT NULL,
    token_ids  BLOB    NOT NULL
);

INSERT OR IGNORE INTO recent_messages (id, chain_id, author_id, learned_at, token_ids)
SELECT message_key(platform, message_id), chain_id, author_id, learned_at, token_ids
FROM recent_messages_old ORDER BY 1;

DROP TABLE recent_messages_old;
CREATE INDEX recent_messages_by_time ON recent_messages (learned_at);
