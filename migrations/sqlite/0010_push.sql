-- Notifications when away (issue 18). A browser's push subscription belongs to the session that
-- made it: signing out (or the session expiring) deletes it with the session. The push service's
-- URL is unique: a browser that subscribes again replaces its row.
CREATE TABLE push_subscriptions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    session_hash BLOB    NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint     TEXT    NOT NULL UNIQUE,
    -- The browser's P-256 public key and auth secret (base64url), for RFC 8291 encryption.
    p256dh       TEXT    NOT NULL,
    auth         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX push_subscriptions_by_user ON push_subscriptions (user_id);
CREATE INDEX push_subscriptions_by_session ON push_subscriptions (session_hash);

-- "Do not disturb until" (Unix ms): nothing is pushed before then. NULL: not set.
ALTER TABLE users ADD COLUMN dnd_until INTEGER;

-- The server's VAPID key (a P-256 private scalar, base64url), made at first start; one row.
-- NATTER_VAPID_PRIVATE_KEY, when set, is used instead.
CREATE TABLE vapid_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    private_key TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
