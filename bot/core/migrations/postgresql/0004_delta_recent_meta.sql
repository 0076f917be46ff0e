-- markovbot's PostgreSQL schema, version 4: the tables SQLite has and 0001-0003 did not bring over.
--
-- transitions and windows are the delta tier (SQLite's 0001 and 0010): live learning upserts its
-- counts here, and the writer merges a chain's delta into its blocks (0003) once it has grown (see
-- bot/core/countwriter.py); a read sums blocks and delta. hubs: wide contexts' successors packed in
-- one row (bot/core/hubs.py). recent_messages: messages learned within the edit window, their
-- token ids sealed (bot/core/sealed.py). meta: the fingerprint key's check value (bot/core/keymeta.py).

CREATE TABLE transitions (
    chain_id  BIGINT NOT NULL,
    ctx       BYTEA  NOT NULL,
    next_id   BIGINT NOT NULL,
    author_id BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (chain_id, ctx, next_id, author_id)
);
CREATE INDEX transitions_into ON transitions (chain_id, next_id);

CREATE TABLE windows (
    chain_id    BIGINT NOT NULL,
    fingerprint BIGINT NOT NULL,
    author_id   BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (chain_id, fingerprint, author_id)
);

CREATE TABLE hubs (
    chain_id BIGINT NOT NULL,
    ctx      BYTEA  NOT NULL,
    next_ids BYTEA  NOT NULL,
    counts   BYTEA  NOT NULL,
    PRIMARY KEY (chain_id, ctx)
);

CREATE TABLE recent_messages (
    id         BIGINT PRIMARY KEY,  -- message_key(platform, message_id), as messages.id
    chain_id   BIGINT NOT NULL,
    author_id  BIGINT NOT NULL,
    learned_at BIGINT NOT NULL,
    token_ids  BYTEA  NOT NULL
);
CREATE INDEX recent_messages_by_time ON recent_messages (learned_at);
CREATE INDEX recent_messages_by_author ON recent_messages (author_id);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
