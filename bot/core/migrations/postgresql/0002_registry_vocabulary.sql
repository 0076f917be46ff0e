-- markovbot's PostgreSQL schema, version 2: the registry (chains, authors) and the vocabulary
-- (tokens), with SQLite's columns (0001_initial.sql and the migrations that changed these tables)
-- as PostgreSQL types, and the messages table that says which authors a chain learned from.
--
-- Ids come from identity columns: a sequence hands each id out once, whichever process asks, and
-- a UNIQUE key makes a second process creating the same token, author or chain get the first
-- one's row (INSERT ... ON CONFLICT DO NOTHING, then read it). No process counts ids itself. A
-- sequence is not transactional: an id taken by a transaction that rolled back, or by an insert
-- that met a conflict, is skipped (a gap no one reads). CACHE 1: no session holds ids in reserve.

-- Vocabulary. Ids 0 (BEGIN) and 1 (END) are reserved and never stored; contexts pack token ids as
-- big-endian uint32 (bot/core/chain.py), hence the upper bound.
-- refs = occurrences of the token in learned messages; a token at 0 refs is deleted.
CREATE TABLE tokens (
    id   BIGINT GENERATED ALWAYS AS IDENTITY (START WITH 2 MINVALUE 2 MAXVALUE 4294967295 CACHE 1) PRIMARY KEY,
    text TEXT   NOT NULL UNIQUE,
    refs BIGINT NOT NULL
);

CREATE TABLE chains (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    platform           TEXT    NOT NULL,
    guild              TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    ord                INTEGER NOT NULL CHECK (ord BETWEEN 1 AND 3),
    run_length         INTEGER NOT NULL CHECK (run_length BETWEEN 3 AND 32),
    messages_seen      BIGINT  NOT NULL DEFAULT 0,
    tokens_seen        BIGINT  NOT NULL DEFAULT 0,
    chars_seen         BIGINT  NOT NULL DEFAULT 0,
    bytes_seen         BIGINT  NOT NULL DEFAULT 0,
    removals           BIGINT  NOT NULL DEFAULT 0,  -- the removals counter at its last removal
    fingerprint_scheme INTEGER NOT NULL,            -- bot/core/fingerprints.py (no scheme-1 chains here)
    learned_at         BIGINT,                      -- unix seconds of the last message learned
    window_version     BIGINT  NOT NULL DEFAULT 0,  -- the window_changes counter at its last change
    UNIQUE (platform, guild, channel)
);

CREATE TABLE authors (
    id          BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    platform    TEXT NOT NULL,
    guild       TEXT NOT NULL,
    external_id TEXT NOT NULL,
    UNIQUE (platform, guild, external_id)
);

-- Counters that are not ids (those are the sequences above): removals (bumped by every unlearn,
-- forget and reset; a new chain starts at its value) and window_changes (SQLite's 0010).
CREATE TABLE counters (
    name  TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('removals', 0), ('window_changes', 1);

-- One row per learned message, keyed by message_key(platform, message_id) (bot/core/messagekeys.py),
-- as SQLite's 0011; the writer fills it. Indexed by (chain, author): a chain's authors and a
-- member's forget read it without a scan.
CREATE TABLE messages (
    id          BIGINT  PRIMARY KEY,
    chain_id    BIGINT  NOT NULL,
    author_id   BIGINT  NOT NULL,
    fingerprint BIGINT  NOT NULL,
    normal      BIGINT,
    tokens      INTEGER NOT NULL,
    chars       INTEGER NOT NULL,
    bytes       INTEGER NOT NULL
);
CREATE INDEX messages_by_author ON messages (chain_id, author_id);
CREATE INDEX messages_by_normal ON messages (chain_id, normal) WHERE normal IS NOT NULL;
CREATE INDEX messages_by_fingerprint ON messages (chain_id, fingerprint) WHERE normal IS NULL;
