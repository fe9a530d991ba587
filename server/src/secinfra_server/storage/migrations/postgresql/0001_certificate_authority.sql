-- 1: CA, join tokens, revocations, issued certificates, metadata.
-- The same tables as SQLite's migration 1 (storage/_sqlite.py), in PostgreSQL
-- types: BYTEA for blobs, BIGINT for epoch milliseconds. Text that is compared
-- or ordered is COLLATE "C" (byte order, as SQLite compares), whatever the
-- database's default collation. Never edit a released migration: add one.
CREATE TABLE meta (
    key TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('bundle_sequence', '1');
CREATE TABLE cas (
    id TEXT COLLATE "C" PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('prepared', 'active', 'retiring', 'retired')),
    cert_pem TEXT NOT NULL,
    key_kek_id TEXT COLLATE "C" NOT NULL,
    key_wrapped BYTEA NOT NULL,
    key_ciphertext BYTEA NOT NULL,
    not_before_ms BIGINT NOT NULL,
    not_after_ms BIGINT NOT NULL,
    prepared_ms BIGINT NOT NULL,
    activated_ms BIGINT,
    retiring_ms BIGINT,
    retired_ms BIGINT,
    leaves_expire_by_ms BIGINT
);
CREATE UNIQUE INDEX cas_one_active ON cas (state) WHERE state = 'active';
CREATE TABLE join_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    spiffe_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    used_ms BIGINT,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE revocations (
    serial TEXT COLLATE "C" NOT NULL,
    spiffe_id TEXT COLLATE "C" NOT NULL,
    reason TEXT NOT NULL,
    revoked_ms BIGINT NOT NULL,
    PRIMARY KEY (serial, spiffe_id)
);
CREATE TABLE issued_certificates (
    serial TEXT COLLATE "C" PRIMARY KEY,
    spiffe_id TEXT NOT NULL,
    ca_id TEXT COLLATE "C" NOT NULL REFERENCES cas (id),
    not_after_ms BIGINT NOT NULL,
    issued_ms BIGINT NOT NULL
);
CREATE INDEX issued_by_ca ON issued_certificates (ca_id, not_after_ms);
