-- Account care (issue 18). A session gets a public id, random and unrelated to its token, by
-- which its owner ends it from the profile (the token's hash never leaves the server), and
-- the User-Agent it signed in with (cut to 300 characters), shown as browser and OS.
ALTER TABLE sessions ADD COLUMN public_id TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
UPDATE sessions SET public_id = lower(hex(randomblob(16)));
CREATE UNIQUE INDEX sessions_by_public_id ON sessions (public_id);

-- A username may change at most once a day: when it last did (NULL: never).
ALTER TABLE users ADD COLUMN username_changed_at INTEGER;

-- One person's messages in (room, seq) order: what an export pages through by key, and what
-- deleting an account reassigns or deletes, without reading every room.
CREATE INDEX messages_by_user ON messages (user_id, room_id, seq);
