-- Transition counts in blocks (bot/core/blocks.py): each chain's per-author entries sorted two
-- ways (direction 0 forward by context, 1 backward by next token), cut into runs of at most 256
-- entries, packed and compressed, a row each. `first` is a block's first key (big-endian uint32s),
-- so blocks sort as their entries do. The transitions table stays as the delta: recent learning,
-- merged into blocks by the writer once it grows (existing rows are merged at the first merge).
CREATE TABLE transition_blocks (
    id        INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a reader may cache a block by id
    chain_id  INTEGER NOT NULL,
    direction INTEGER NOT NULL CHECK (direction IN (0, 1)),
    first     BLOB    NOT NULL,
    entries   INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    UNIQUE (chain_id, direction, first)
);
