-- Full-text search of messages (issue 17). A contentless FTS5 index: it keeps only the words,
-- the text stays in `messages`. Its rowid is the message's key packed into one integer,
-- room_id << 32 | seq (a room's seqs stay far below 2^32). `contentless_delete=1` lets a row
-- be removed by rowid alone (SQLite 3.43+), which an edit and a delete need.
-- `unicode61 remove_diacritics 2`: words are runs of letters and digits, compared without case
-- or accents; `domain::search` cuts what people type into the same words.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

-- Kept current by the statements that store, edit and delete messages, in their transaction.
-- What is searchable is decided here, in the WHEN clauses, and nowhere else: a message that is
-- not deleted (a deleted one has an empty body and `deleted_at` set) that people wrote (a
-- system line, `kind = 'system'`, says what changed in the room: nobody searches for it).
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN new.kind = 'text' AND new.deleted_at IS NULL AND new.body <> ''
BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES ((new.room_id << 32) | new.seq, new.body);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, deleted_at ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = (old.room_id << 32) | old.seq;
    INSERT INTO messages_fts (rowid, body)
        SELECT (new.room_id << 32) | new.seq, new.body
        WHERE new.kind = 'text' AND new.deleted_at IS NULL AND new.body <> '';
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    DELETE FROM messages_fts WHERE rowid = (old.room_id << 32) | old.seq;
END;

INSERT INTO messages_fts (rowid, body)
    SELECT (room_id << 32) | seq, body FROM messages WHERE kind = 'text' AND deleted_at IS NULL AND body <> '';

