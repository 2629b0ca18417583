-- Full-text search of messages (issue 17). The words of each message, kept by PostgreSQL itself
-- in a generated column (so the statement that stores, edits or deletes a message updates
-- them), with a GIN index. The 'simple' configuration: no stemming or stop words, so every
-- word is findable by its beginning, as on SQLite. Punctuation becomes spaces first, or the
-- parser would keep `example.com`, `v1.2` or `a-b` as single words that their parts do not
-- find; `domain::search` cuts what people type into the same words.
-- A deleted message has an empty body, hence no words: it is never found. Only what people
-- wrote is searchable: a system line ("ada renamed the room…", `kind = 'system'`) has no words.
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    CASE WHEN kind = 'text' THEN
        to_tsvector('simple', translate(body,
            '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~',
            '                                '))
    END
) STORED;
CREATE INDEX messages_search ON messages USING gin (search);

-- Newest first across rooms: `search` reads results by time.
CREATE INDEX messages_by_time ON messages (created_at);
