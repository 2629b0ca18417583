-- Presence shared by several natter instances (PostgreSQL only; SQLite means one instance and
-- keeps presence in memory). An instance counts as alive while its heartbeat is recent, so the
-- people on a crashed instance go offline without anyone cleaning up after it.

CREATE TABLE instances (
    id           TEXT   PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

CREATE TABLE presence (
    instance_id TEXT   NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    room_id     BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id, instance_id)
);
CREATE INDEX presence_by_instance ON presence (instance_id);
