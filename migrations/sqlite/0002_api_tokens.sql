-- Personal access tokens for the JSON API, sent as `Authorization: Bearer ntr_…`. The token text
-- is shown once, when it is created; only its SHA-256 is kept. Revoking deletes the row.

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_hash   BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    -- Written at most once a minute per token: SQLite has one writer, and the API is hot.
    last_used_at INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
