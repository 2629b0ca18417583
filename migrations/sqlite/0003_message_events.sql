-- Edits and deletes are events of the room's sequence (DESIGN.md §9b): each takes the room's next
-- seq, and `changed_seq` remembers the last one that changed the message (NULL: never changed).
-- A socket that resumes after seq N reads the messages posted after N and those changed after N;
-- the partial index holds only changed messages, so posting costs no more than before.
-- A deleted message keeps its row (its seq and author) with an empty body and `deleted_at` set.
ALTER TABLE messages ADD COLUMN changed_seq INTEGER;
CREATE INDEX messages_changed ON messages (room_id, changed_seq) WHERE changed_seq IS NOT NULL;
