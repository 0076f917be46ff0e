-- markovbot's PostgreSQL schema, version 5: the backward delta (SQLite's 0012). transitions stays
-- the forward delta; transitions_back holds the same counts keyed as backward blocks sort (next,
-- rest: the context rotated left by one token, author), so that the writer merges each direction's
-- delta into its blocks a key range at a time (bot/core/rolling.py).
CREATE TABLE transitions_back (
    chain_id  BIGINT NOT NULL,
    next_id   BIGINT NOT NULL,
    rest      BYTEA  NOT NULL,
    author_id BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (chain_id, next_id, rest, author_id)
);

INSERT INTO transitions_back (chain_id, next_id, rest, author_id, count)
SELECT chain_id, next_id, substring(ctx FROM 5) || substring(ctx FROM 1 FOR 4), author_id, count
FROM transitions;

DROP INDEX transitions_into;
