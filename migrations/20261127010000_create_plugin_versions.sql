-- Installed plugin versions, so that a restart serves what the operator installed, and the
-- previous version can be rolled back to. Components are stored as base64 text so that the
-- same column type works on SQLite and PostgreSQL.
CREATE TABLE plugin_versions (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    component    TEXT NOT NULL,
    installed_by TEXT NOT NULL,
    installed_at TEXT NOT NULL
);
CREATE INDEX plugin_versions_name ON plugin_versions (name);

-- Which version of each plugin serves, and which one a rollback returns to.
CREATE TABLE plugin_state (
    name        TEXT PRIMARY KEY,
    active_id   TEXT NOT NULL REFERENCES plugin_versions (id),
    previous_id TEXT REFERENCES plugin_versions (id)
);
