-- A forget skips the chains of its guild the member has no message row in (bot/core/removal.py):
-- every message learned since 0011 has its row in its chain, written in the transaction that
-- counts it (bot/core/writer.py, apply), so a member without a row there has no counts there.
-- 0011 copied the rows with INSERT OR IGNORE, and a key met twice kept one row: a chain whose
-- messages_seen disagrees with its rows may hold counts without a row, and every forget scans it.
ALTER TABLE chains ADD COLUMN rows_incomplete INTEGER NOT NULL DEFAULT 0;

UPDATE chains SET rows_incomplete = 1
WHERE id IN (
    SELECT c.id
    FROM chains AS c
    LEFT JOIN (SELECT chain_id, count(*) AS n FROM messages GROUP BY chain_id) AS m ON m.chain_id = c.id
    WHERE c.messages_seen != coalesce(m.n, 0)
);
