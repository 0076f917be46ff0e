-- Text-import message ids lose the hash of their line: `<file name>:<line>:<12 hex digits>`
-- (an unsalted blake2b of the text, which a guess could be checked against) becomes
-- `<file name>:<line>`, the id `markovbot import` now gives, so that importing the same file
-- again after the upgrade learns nothing twice. Only local (CLI) messages of exactly that shape
-- change; should the new id already exist, the old row is kept (OR IGNORE).
UPDATE OR IGNORE messages
SET message_id = substr(message_id, 1, length(message_id) - 13)
WHERE platform = 'local'
  AND message_id GLOB '*:[0-9]*:[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'
  AND rtrim(substr(message_id, 1, length(message_id) - 13), '0123456789') GLOB '*:'
  AND rtrim(substr(message_id, 1, length(message_id) - 13), '0123456789')
      != substr(message_id, 1, length(message_id) - 13);
