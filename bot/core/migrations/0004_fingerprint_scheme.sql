-- How each chain's fingerprints are made (bot/core/fingerprints.py). Chains learned before this
-- migration keep scheme 1 (exact tokens) until reset: their text is gone, so their fingerprints
-- cannot be recomputed. New chains are created with scheme 2 (normalised tokens).
-- The fingerprint key moves out of meta on the next open (bot/core/keys.py), not here: the key
-- file must be written and made durable before the salt leaves the database.
ALTER TABLE chains ADD COLUMN fingerprint_scheme INTEGER NOT NULL DEFAULT 1;

-- Under scheme 2, each learned message's normalised fingerprint (case-folded, NFKC, trailing
-- punctuation dropped): the copy guard looks it up, and the retention report counts messages by it
-- ("said once" means once up to that normalisation). NULL for messages of scheme-1 chains.
ALTER TABLE messages ADD COLUMN normal INTEGER;
CREATE INDEX messages_by_normal ON messages (chain_id, normal) WHERE normal IS NOT NULL;
