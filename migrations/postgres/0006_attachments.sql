-- Attachments: files carried by a message (issue 16). Written in the post's transaction, after
-- their bytes are in storage; a delete of the message removes its rows in its own transaction
-- and then the bytes. `token` is the file's address (`/files/{token}/{name}`): random, and not
-- the storage key, so a link tells nothing about where the bytes are.
CREATE TABLE attachments (
    room_id      BIGINT NOT NULL,
    seq          BIGINT NOT NULL,
    position     BIGINT NOT NULL,
    token        TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    mime         TEXT NOT NULL,
    width        BIGINT,
    height       BIGINT,
    thumb_width  BIGINT,
    thumb_height BIGINT,
    storage_key  TEXT NOT NULL UNIQUE,
    thumb_key    TEXT UNIQUE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (room_id, seq, position),
    FOREIGN KEY (room_id, seq) REFERENCES messages (room_id, seq) ON DELETE CASCADE
);
