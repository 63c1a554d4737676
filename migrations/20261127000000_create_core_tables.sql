-- Core tables of the Tidings host. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Timestamps are ISO 8601 UTC text with millisecond precision, so they sort as text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
-- E-mails are unique regardless of case.
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

-- Server-side sessions. The cookie carries a random token; only its SHA-256 is stored.
-- `id` is the public session id: the name of the session's Socket.IO room.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- The generic record store: every plugin record type lives here as JSON.
-- Plugins' query fields get expression indexes created at plugin load (see db/records.rs).
CREATE TABLE records (
    record_type TEXT NOT NULL,
    id          TEXT NOT NULL,
    data        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (record_type, id)
);

-- Named counters. `notification_seq` hands out notification offsets: it is bumped inside the
-- writing transaction, so its row lock orders offsets by commit on PostgreSQL too.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('notification_seq', 0);

-- Every notification, written in the same transaction as the change it reports.
CREATE TABLE notification_log (
    seq            BIGINT PRIMARY KEY,
    event          TEXT NOT NULL,
    record_type    TEXT NOT NULL,
    payload        TEXT NOT NULL,
    targets        TEXT NOT NULL,
    exclude_socket TEXT,
    created_at     TEXT NOT NULL
);
