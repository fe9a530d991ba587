-- 2: secrets, authorization model and tuples, audit log, idempotency records.
-- The same tables as SQLite's migration 2 (storage/_sqlite.py); see 0001 for
-- the type mapping. "user" is quoted: it is a reserved word in PostgreSQL.
CREATE TABLE secrets (
    name TEXT COLLATE "C" PRIMARY KEY,
    current_version BIGINT NOT NULL,
    max_versions BIGINT NOT NULL,
    cache_max_age_s BIGINT NOT NULL,
    stale_if_error_s BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE TABLE secret_versions (
    name TEXT COLLATE "C" NOT NULL REFERENCES secrets (name),
    version BIGINT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('enabled', 'deleted', 'destroyed')),
    kek_id TEXT COLLATE "C",
    wrapped_key BYTEA,
    ciphertext BYTEA,
    created_ms BIGINT NOT NULL,
    deleted_ms BIGINT,
    PRIMARY KEY (name, version)
);
CREATE TABLE authz_models (
    id TEXT COLLATE "C" PRIMARY KEY,
    model_json TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('authz_revision', '0');
INSERT INTO meta (key, value) VALUES ('authz_model_id', '');
CREATE TABLE authz_tuples (
    object_type TEXT COLLATE "C" NOT NULL,
    object_id TEXT COLLATE "C" NOT NULL,
    relation TEXT COLLATE "C" NOT NULL,
    "user" TEXT COLLATE "C" NOT NULL,
    revision BIGINT NOT NULL,
    PRIMARY KEY (object_type, object_id, relation, "user")
);
CREATE INDEX authz_tuples_by_user ON authz_tuples (object_type, relation, "user");
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE idempotency (
    caller TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
    kek_id TEXT COLLATE "C",
    wrapped_key BYTEA,
    ciphertext BYTEA,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_by_age ON idempotency (created_ms);
