-- Personal access tokens for the JSON API, sent as `Authorization: Bearer ntr_…`. The token text
-- is shown once, when it is created; only its SHA-256 is kept. Revoking deletes the row.

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    token_hash   BYTEA  NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    -- Written at most once a minute per token, so a busy script does not write on every call.
    last_used_at BIGINT
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
