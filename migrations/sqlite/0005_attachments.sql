-- Attachments: files carried by a message (issue 16). Written in the post's transaction, after
-- their bytes are in storage; a delete of the message removes its rows in its own transaction
-- and then the bytes. `token` is the file's address (`/files/{token}/{name}`): random, and not
-- the storage key, so a link tells nothing about where the bytes are.
CREATE TABLE attachments (
    room_id      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    token        TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mime         TEXT NOT NULL,
    width        INTEGER,
    height       INTEGER,
    thumb_width  INTEGER,
    thumb_height INTEGER,
    storage_key  TEXT NOT NULL UNIQUE,
    thumb_key    TEXT UNIQUE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq, position),
    FOREIGN KEY (room_id, seq) REFERENCES messages (room_id, seq) ON DELETE CASCADE
) WITHOUT ROWID;
