-- The messages table keyed by a 64-bit hash of (platform, message_id) (bot/core/messagekeys.py,
-- the function message_key that the migration runner provides), in a rowid table: the text key of
-- the WITHOUT ROWID table was stored in the table and again in each index entry. messages_by_author
-- goes: forget reads the author's rows in one scan of the table (0.2 s at 1,000,000 messages), and
-- the index was 18 of the 73 bytes a message costs. At 1,000,000 messages: 124 -> 73 bytes each.
-- Rows go in key order (pages filled); a key met twice (about 3e-8 at a million) keeps one row.
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

-- recent_messages keyed the same way (212 -> 150 bytes a row with Discord's 19-digit ids, 300,000
-- rows). Rows sealed before this migration stay bound to the text id, which every unlearn is given
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
CREATE INDEX recent_messages_by_author ON recent_messages (chain_id, author_id);
CREATE INDEX recent_messages_by_time ON recent_messages (learned_at);
