-- markovbot's PostgreSQL schema, version 3: transition counts and window fingerprints in blocks
-- (bot/core/blocks.py), the tables of SQLite's 0008_transition_blocks.sql and 0010_window_blocks.sql.
-- A block is one row: a run of a chain's sorted entries in one direction (0 forward, 1 backward),
-- packed and compressed (data), and its first key as big-endian uint32s (first); bytea compares
-- byte by byte, as SQLite's BLOB does, so blocks sort as their entries do on both engines.
--
-- Ids come from identity sequences and are never reused (a sequence never hands a value out twice,
-- whatever rolls back): a reader may cache a decoded block by its id. The writer deletes a chain's
-- blocks itself (as on SQLite), so chain_id carries no foreign key. There is no delta table (the
-- transitions and windows tables of SQLite) yet: every count on PostgreSQL lives in the blocks.

CREATE TABLE transition_blocks (
    id        BIGINT   GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    chain_id  BIGINT   NOT NULL,
    direction SMALLINT NOT NULL CHECK (direction IN (0, 1)),
    first     BYTEA    NOT NULL,
    entries   INTEGER  NOT NULL,
    data      BYTEA    NOT NULL,
    UNIQUE (chain_id, direction, first)
);

CREATE TABLE window_blocks (
    id        BIGINT   GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    chain_id  BIGINT   NOT NULL,
    direction SMALLINT NOT NULL CHECK (direction = 0),
    first     BYTEA    NOT NULL,
    entries   INTEGER  NOT NULL,
    data      BYTEA    NOT NULL,
    UNIQUE (chain_id, direction, first)
);

-- data is zstd already: PostgreSQL's own compression would only spend time failing to shrink it.
ALTER TABLE transition_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE window_blocks ALTER COLUMN data SET STORAGE EXTERNAL;

-- A chain's window_version (0002) takes a new value at every change to its window blocks, from a
-- sequence rather than the counters row: nextval never waits for another writer's transaction,
-- where a counter row stays locked until the transaction that bumped it ends (an import's, for a
-- minute). Values only need to be distinct; 0 still means "never had any".
CREATE SEQUENCE window_changes START WITH 1 CACHE 1;
DELETE FROM counters WHERE name = 'window_changes';
