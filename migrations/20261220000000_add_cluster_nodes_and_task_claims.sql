-- Several servers on one PostgreSQL database form a cluster (docs/operating.md).
--
-- Each running node records how far its emitter has sent the log, so that retention never
-- prunes an entry a live node has not emitted yet. A new node starts at the log's head (it has
-- no sockets yet), so the one shared `emitted_seq` of a single server is gone.
CREATE TABLE nodes (
    id          TEXT PRIMARY KEY,
    emitted_seq BIGINT NOT NULL,
    -- When the node last recorded its position (milliseconds since the Unix epoch, the node's
    -- clock); a node not seen for a while is taken for dead.
    seen_at     BIGINT NOT NULL
);
DELETE FROM counters WHERE name = 'emitted_seq';

-- A task being run is claimed by one node until `claimed_until` (milliseconds since the Unix
-- epoch): other nodes leave it alone until then, and take it over if that node died mid-run.
ALTER TABLE tasks ADD COLUMN claimed_until BIGINT;
