-- How each chain's fingerprints are made (bot/core/fingerprints.py). Chains learned before this
-- migration keep scheme 1 (exact tokens) until reset: their text is gone, so their fingerprints
-- cannot be recomputed. New chains are created with scheme 2 (normalised tokens).
-- The fingerprint key moves out of meta on the next open (bot/core/keys.py), not here: the key
-- file must be written and made durable before the salt leaves the database.
ALTER TABLE chains ADD COLUMN fingerprint_scheme INTEGER NOT NULL DEFAULT 1;
