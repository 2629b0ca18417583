-- natter schema, PostgreSQL flavour. Times are Unix milliseconds (BIGINT) on both backends.

CREATE TABLE users (
    id           BIGSERIAL PRIMARY KEY,
    provider     TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    email        TEXT   NOT NULL,
    -- NULL until the person chooses one; every page but sign-out waits for it.
    username     TEXT,
    username_key TEXT   UNIQUE,
    created_at   BIGINT NOT NULL,
    UNIQUE (provider, subject)
);

CREATE TABLE sessions (
    token_hash   BYTEA  PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- A sign-in in progress: bound to the browser that started it by a cookie whose hash is the key.
CREATE TABLE pending_logins (
    token_hash    BYTEA  PRIMARY KEY,
    state         TEXT   NOT NULL,
    pkce_verifier TEXT   NOT NULL,
    return_to     TEXT,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE rooms (
    id               BIGSERIAL PRIMARY KEY,
    code             TEXT   NOT NULL UNIQUE,
    name             TEXT   NOT NULL DEFAULT '',
    created_by       BIGINT NOT NULL REFERENCES users (id),
    created_at       BIGINT NOT NULL,
    -- The room's event sequence: each post takes last_seq + 1 inside its transaction.
    last_seq         BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT NOT NULL
);

CREATE TABLE members (
    room_id       BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at     BIGINT NOT NULL,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id, room_id);

CREATE TABLE messages (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    body       TEXT   NOT NULL,
    -- Random per rendered composer: a double click or a resubmitted form posts once.
    client_id  TEXT,
    created_at BIGINT NOT NULL,
    edited_at  BIGINT,
    deleted_at BIGINT,
    PRIMARY KEY (room_id, seq)
);
CREATE UNIQUE INDEX messages_once_per_client_id ON messages (room_id, user_id, client_id);
