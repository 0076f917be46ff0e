-- The delta in each direction of the blocks: transitions stays the forward delta (keyed as forward
-- blocks sort, by context), transitions_back is the backward one (keyed as backward blocks sort:
-- next, the context's last n-1 tokens, its first, author). Live learning upserts a row into both;
-- the writer merges each into its direction's blocks a key range at a time, over many commits
-- (bot/core/rolling.py), which one delta table could not: a slice of contexts is in every
-- backward block. rest: the context rotated left by one token (c2..cn, c1), big-endian uint32s.
CREATE TABLE transitions_back (
    chain_id  INTEGER NOT NULL,
    next_id   INTEGER NOT NULL,
    rest      BLOB    NOT NULL,
    author_id INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (chain_id, next_id, rest, author_id)
) WITHOUT ROWID;

INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count)
SELECT chain_id, next_id, CAST(substr(ctx, 5) || substr(ctx, 1, 4) AS BLOB), author_id, count FROM transitions;

-- Backward reads use transitions_back now.
DROP INDEX transitions_into;
