-- markovbot schema, version 1.
-- No message text is stored: only the vocabulary, transition counts (in total and per
-- author, so that forgetting is exact), learned message ids, and salted fingerprints.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Vocabulary. Ids 0 (BEGIN) and 1 (END) are reserved and never stored.
-- refs = occurrences of the token in learned messages; a token at 0 refs is deleted.
CREATE TABLE tokens (
    id   INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE,
    refs INTEGER NOT NULL
);

CREATE TABLE chains (
    id            INTEGER PRIMARY KEY,
    platform      TEXT NOT NULL,
    guild         TEXT NOT NULL,
    channel       TEXT NOT NULL,
    ord           INTEGER NOT NULL CHECK (ord BETWEEN 1 AND 3),
    run_length    INTEGER NOT NULL CHECK (run_length BETWEEN 3 AND 32),
    messages_seen INTEGER NOT NULL DEFAULT 0,
    tokens_seen   INTEGER NOT NULL DEFAULT 0,
    chars_seen    INTEGER NOT NULL DEFAULT 0,
    bytes_seen    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (platform, guild, channel)
);

CREATE TABLE authors (
    id          INTEGER PRIMARY KEY,
    platform    TEXT NOT NULL,
    guild       TEXT NOT NULL,
    external_id TEXT NOT NULL,
    UNIQUE (platform, guild, external_id)
);

-- Transition counts, per author so that forgetting a member is exact. A walk sums a
-- context's rows over authors (the key's order makes that one range read); ctx is the
-- order-n context packed as n big-endian uint32 token ids.
CREATE TABLE transitions (
    chain_id  INTEGER NOT NULL,
    ctx       BLOB    NOT NULL,
    next_id   INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (chain_id, ctx, next_id, author_id)
) WITHOUT ROWID;

-- Walking backward from a start word: which contexts lead into a token? A plain column
-- index; the context's suffix is filtered from it. (An index on substr(ctx, 5) would be
-- rewritten on every count update and cost 3x on ingest.)
CREATE INDEX transitions_into ON transitions (chain_id, next_id);

-- One row per learned message: its id (never its text), whole-message fingerprint and size.
CREATE TABLE messages (
    platform    TEXT    NOT NULL,
    message_id  TEXT    NOT NULL,
    chain_id    INTEGER NOT NULL,
    author_id   INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    tokens      INTEGER NOT NULL,
    chars       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    PRIMARY KEY (platform, message_id)
) WITHOUT ROWID;

CREATE INDEX messages_by_author ON messages (chain_id, author_id);
CREATE INDEX messages_by_fingerprint ON messages (chain_id, fingerprint);

-- Salted fingerprints of every K-token window of learned messages, counted per author.
CREATE TABLE windows (
    chain_id    INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    author_id   INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (chain_id, fingerprint, author_id)
) WITHOUT ROWID;

CREATE TABLE consent (
    platform TEXT    NOT NULL,
    guild    TEXT    NOT NULL,
    member   TEXT    NOT NULL,
    since    INTEGER NOT NULL,
    PRIMARY KEY (platform, guild, member)
) WITHOUT ROWID;

CREATE TABLE enabled_channels (
    platform TEXT    NOT NULL,
    guild    TEXT    NOT NULL,
    channel  TEXT    NOT NULL,
    since    INTEGER NOT NULL,
    PRIMARY KEY (platform, guild, channel)
) WITHOUT ROWID;

CREATE TABLE guild_settings (
    platform         TEXT    NOT NULL,
    guild            TEXT    NOT NULL,
    ord              INTEGER NOT NULL DEFAULT 2,
    reply_on_mention INTEGER NOT NULL DEFAULT 1,
    chime_chance     REAL    NOT NULL DEFAULT 0,
    run_length       INTEGER NOT NULL DEFAULT 8,
    copy_guard       INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (platform, guild)
) WITHOUT ROWID;
