-- Recently learned messages as token ids (never text), so that a delete or an edit can be
-- unlearned exactly after a restart, when the platform no longer has the old text for us.
-- Written in the same transaction as the message's learning, deleted with it (unlearn,
-- forget, reset), and pruned once learned_at is older than MARKOV_EDIT_WINDOW_DAYS.
-- token_ids: the message's tokens as big-endian uint32 ids (like transitions.ctx), sealed with
-- ChaCha20-Poly1305 under a key derived from the fingerprint key (bot/core/sealed.py), so the
-- database alone does not give them back; each id is referenced by the learned message, so it
-- stays in the vocabulary while the row exists. Imported files keep no rows (nothing deletes them).
CREATE TABLE recent_messages (
    platform   TEXT    NOT NULL,
    message_id TEXT    NOT NULL,
    chain_id   INTEGER NOT NULL,
    author_id  INTEGER NOT NULL,
    learned_at INTEGER NOT NULL,
    token_ids  BLOB    NOT NULL,
    PRIMARY KEY (platform, message_id)
) WITHOUT ROWID;

CREATE INDEX recent_messages_by_author ON recent_messages (chain_id, author_id);
CREATE INDEX recent_messages_by_time ON recent_messages (learned_at);
