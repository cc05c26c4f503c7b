-- hookd's PostgreSQL schema, version 2: the change feed keeps a bounded history, every node
-- reports itself, and hook invocations from every node are kept in one place.

-- The oldest revision whose changes are still kept. A node that applied less than the one
-- before it cannot catch up from the feed and reloads everything instead.
ALTER TABLE revision ADD COLUMN oldest_kept bigint NOT NULL DEFAULT 1 CHECK (oldest_kept >= 1);

-- Each node: where it serves, what it has applied, and when it last said so.
CREATE TABLE nodes (
    name text PRIMARY KEY,
    address text NOT NULL,
    version text NOT NULL,
    started_at bigint NOT NULL,
    applied_revision bigint NOT NULL,
    heartbeat_at bigint NOT NULL
);

-- Hook invocations from every node, newest kept per hook. Sequence numbers come from one
-- counter row locked by each batch, so they commit in order and a follower reading past the
-- last one it saw misses nothing (a bigserial would not promise that).
CREATE TABLE hook_log_sequence (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    value bigint NOT NULL CHECK (value >= 0)
);
INSERT INTO hook_log_sequence (singleton, value) VALUES (true, 0);

CREATE TABLE hook_logs (
    seq bigint PRIMARY KEY,
    hook_id text NOT NULL,
    node text NOT NULL,
    entry jsonb NOT NULL
);
CREATE INDEX hook_logs_by_hook ON hook_logs (hook_id, seq);
