-- Window fingerprints in blocks (bot/core/blocks.py, kind WINDOWS): each chain's (fingerprint,
-- author, count) entries sorted by fingerprint, cut into runs of at most 256 entries, packed and
-- compressed, a row each; the shape of transition_blocks, with one direction (0). A fingerprint
-- is kept whole as two columns, its high 32 bits (sign bit flipped, so that they sort as the
-- signed value) and its low 32 bits. The windows table stays as the delta: recent learning,
-- merged into blocks with the chain's transitions (existing rows are merged at the first merge).
CREATE TABLE window_blocks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a reader may cache a block by id
    chain_id  INTEGER NOT NULL,
    direction INTEGER NOT NULL CHECK (direction = 0),
    first     BLOB    NOT NULL,
    entries   INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    UNIQUE (chain_id, direction, first)
);

-- Each chain's window blocks' version: a value of the window_changes counter, taken by every
-- change to them, so a reader keeps a chain's block index until that chain's blocks change
-- (0: the chain never had any).
ALTER TABLE chains ADD COLUMN window_version INTEGER NOT NULL DEFAULT 0;
INSERT OR IGNORE INTO counters (name, value) VALUES ('window_changes', 1);
