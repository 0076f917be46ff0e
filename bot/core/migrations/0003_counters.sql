-- Several processes may write one file (an import while the bot runs): what used to live in one
-- process's memory lives here, read and advanced inside each write transaction.

-- A markovbot database says so (bytes 68-71 of the header: "MKVB"); a SQLite file without it
-- and without markovbot's tables is refused untouched.
PRAGMA application_id = 1296782914;

-- Counters: the next token, author and chain ids (never reused: a cached id -> text stays true,
-- and a message queued for a member another process forgot can never land on a newer member),
-- and removals (bumped by every unlearn, forget and reset; a new chain starts at its value).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO counters (name, value) VALUES
    ('next_token_id', (SELECT max(2, coalesce(max(id), 1) + 1) FROM tokens)),
    ('next_author_id', (SELECT coalesce(max(id), 0) + 1 FROM authors)),
    ('next_chain_id', (SELECT coalesce(max(id), 0) + 1 FROM chains)),
    ('removals', 0);

-- Each chain's last removal (a value of the removals counter): a walker re-reads it when another
-- connection committed, and drops what it cached for the chain when it changed.
ALTER TABLE chains ADD COLUMN removals INTEGER NOT NULL DEFAULT 0;
