-- Hubs (bot/core/hubs.py): contexts with many successors, summed over authors and packed as
-- two arrays of little-endian int64 (successor ids ascending, counts), so that a walk reads
-- one row where the transitions table has thousands. Derived from transitions, kept exact by
-- the writer in the same transaction; a context becomes a hub when it has enough rows.
CREATE TABLE hubs (
    chain_id INTEGER NOT NULL,
    ctx      BLOB    NOT NULL,
    next_ids BLOB    NOT NULL,
    counts   BLOB    NOT NULL,
    PRIMARY KEY (chain_id, ctx)
);
