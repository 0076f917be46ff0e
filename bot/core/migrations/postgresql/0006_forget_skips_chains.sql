-- markovbot's PostgreSQL schema, version 6: chains.rows_incomplete (SQLite's 0013). Every message
-- counted here has its row in its chain (claimed in the transaction that counts it), so a forget
-- skips the chains the member has no row in; a chain copied from a SQLite file where 0011 may have
-- dropped a row keeps its mark, and every forget scans it.
ALTER TABLE chains ADD COLUMN rows_incomplete BOOLEAN NOT NULL DEFAULT false;
