-- When each chain last learned a message (unix seconds; NULL: before this version), for
-- `markovbot chains`.
ALTER TABLE chains ADD COLUMN learned_at INTEGER;
