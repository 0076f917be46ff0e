-- Each message's normalised fingerprint (fingerprint scheme 2) kept among its chain's windows, as
-- one more entry of its author, instead of the index messages_by_normal: the copy guard's
-- whole-message check and the report's counts by form look it up there (bot/core/counting.py,
-- fingerprints). A whole message's fingerprint is of another domain than a K-run's (it hashes a
-- first element no token holds: bot/core/fingerprints.py), so the two never meet. On real chat
-- (258,112 messages) the index was 6.6 MB of a 41.0 MB file (26 bytes a message); the forms
-- take 1.7 MB in the window blocks (about 7), and the file 36.1 MB. The rows go to the delta,
-- which merges them into blocks as it merges live learning's.
INSERT INTO windows (chain_id, fingerprint, author_id, count)
SELECT chain_id, normal, author_id, count(*) FROM messages
WHERE normal IS NOT NULL
GROUP BY chain_id, normal, author_id
ON CONFLICT (chain_id, fingerprint, author_id) DO UPDATE SET count = count + excluded.count;

DROP INDEX messages_by_normal;
