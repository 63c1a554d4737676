-- Element indexes: one row per element of an array field that a plugin declared with an
-- `elements` index, maintained by the host on every write, so that `contains` queries
-- (group membership, events of a department) are index lookups on both backends.
CREATE TABLE record_elements (
    record_type TEXT NOT NULL,
    field       TEXT NOT NULL,
    element     TEXT NOT NULL,
    id          TEXT NOT NULL,
    PRIMARY KEY (record_type, field, element, id)
);
CREATE INDEX record_elements_record ON record_elements (record_type, id);

-- Which element indexes have been built (backfilled from the stored records).
CREATE TABLE record_element_fields (
    record_type TEXT NOT NULL,
    field       TEXT NOT NULL,
    PRIMARY KEY (record_type, field)
);

-- Background tasks a plugin asked for in a response, stored in the request's transaction and
-- removed in the transaction of the run that completes them. A row that survives a restart
-- is run again.
CREATE TABLE tasks (
    id         TEXT PRIMARY KEY,
    plugin     TEXT NOT NULL,
    name       TEXT NOT NULL,
    input      TEXT NOT NULL,
    attempts   BIGINT NOT NULL,
    -- Why the last attempt did not complete, if it ended (a crash leaves it as it was).
    last_error TEXT,
    created_at TEXT NOT NULL
);
