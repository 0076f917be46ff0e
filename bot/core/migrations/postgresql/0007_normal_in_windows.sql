-- markovbot's PostgreSQL schema, version 7: each message's normalised fingerprint kept among its
-- chain's windows instead of the index messages_by_normal (SQLite's 0014, which says why).
INSERT INTO windows (chain_id, fingerprint, author_id, count)
SELECT chain_id, normal, author_id, count(*) FROM messages
WHERE normal IS NOT NULL
GROUP BY chain_id, normal, author_id
ON CONFLICT (chain_id, fingerprint, author_id) DO UPDATE SET count = windows.count + excluded.count;

DROP INDEX messages_by_normal;
