-- Mentions: who a message names with `@username` (members of the room when it was posted),
-- written in the post's transaction, so "messages mentioning me" is an index lookup, never a
-- text search. An edit replaces its message's rows.

CREATE TABLE mentions (
    room_id INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (room_id, seq, user_id),
    FOREIGN KEY (room_id, seq) REFERENCES messages (room_id, seq) ON DELETE CASCADE
) WITHOUT ROWID;
-- "Unread messages mentioning me", per room: a range of this index from members.last_read_seq.
CREATE INDEX mentions_by_user ON mentions (user_id, room_id, seq);

-- What a person wants to hear about: 'all' messages, 'mentions' only, or 'nothing'. Per room
-- (NULL: the person's default), with a default per person.
ALTER TABLE users ADD COLUMN notify_default TEXT NOT NULL DEFAULT 'all'
    CHECK (notify_default IN ('all', 'mentions', 'nothing'));
ALTER TABLE members ADD COLUMN notify TEXT
    CHECK (notify IN ('all', 'mentions', 'nothing'));
