-- hookd's PostgreSQL schema, version 1: the records the sled store holds, with the rules the
-- Management API answers 409 for kept as constraints, and the change feed every node follows.
-- Each record is stored whole as JSON (the same envelope as sled's) beside the columns its
-- constraints and lookups need.

-- The installation: the tenant, and a value sealed under the shared secrets key that a node
-- opens at start to prove it holds the same key.
CREATE TABLE installation (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tenant jsonb,
    secrets_check bytea,
    secret_hash_key bytea
);
INSERT INTO installation (singleton) VALUES (true);

CREATE TABLE clients (
    client_id text PRIMARY KEY,
    record jsonb NOT NULL
);

CREATE TABLE apis (
    id text PRIMARY KEY,
    identifier text NOT NULL UNIQUE,
    record jsonb NOT NULL
);

-- One grant per (client, API); a grant goes with its client or its API.
CREATE TABLE grants (
    id text PRIMARY KEY,
    client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    audience text NOT NULL REFERENCES apis (identifier) ON DELETE CASCADE,
    record jsonb NOT NULL,
    UNIQUE (client_id, audience)
);

-- Hook modules, content-addressed: a node fetches a version by its sha256.
CREATE TABLE modules (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes bytea NOT NULL
);

CREATE TABLE hooks (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    trigger_id text NOT NULL,
    enabled boolean NOT NULL,
    active_version text REFERENCES modules (sha256),
    record jsonb NOT NULL
);
-- At most one enabled hook per trigger.
CREATE UNIQUE INDEX hooks_one_enabled_per_trigger ON hooks (trigger_id) WHERE enabled;

CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    record jsonb NOT NULL
);

-- The change feed. Every write increments the one revision row in its own transaction (so
-- revisions commit in order, which a sequence does not promise) and records what it changed;
-- NOTIFY carries only the revision number.
CREATE TABLE revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    value bigint NOT NULL CHECK (value >= 0)
);
INSERT INTO revision (singleton, value) VALUES (true, 0);

CREATE TABLE changes (
    revision bigint NOT NULL,
    entity text NOT NULL CHECK (entity IN ('tenant', 'client', 'api', 'grant', 'hook', 'keys')),
    entity_id text NOT NULL,
    PRIMARY KEY (revision, entity, entity_id)
);
