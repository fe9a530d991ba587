-- 3: the published CRLs (as SQLite's migration 3), and telling every
-- replica what changed (PostgreSQL only: SQLite has one process, which makes
-- every change itself, so it needs none of that).
CREATE TABLE crls (
    ca_id TEXT COLLATE "C" PRIMARY KEY REFERENCES cas (id),
    crl_number BIGINT NOT NULL,
    der BYTEA NOT NULL,
    revocations BIGINT NOT NULL,
    this_update_ms BIGINT NOT NULL
);

-- A replica keeps a few things in memory for the hot path: the CAs (and the
-- bundle and TLS trust store rendered from them), the revocation deny-list
-- and the CRLs it last read. Any write that changes one of them, whichever
-- replica makes it, runs these triggers inside its own transaction: they bump
-- that kind's row
-- in state_revisions and NOTIFY secinfra_changes with the kind as payload.
-- PostgreSQL delivers the notification only if the transaction commits, after
-- it commits. Replicas LISTEN on the channel and also compare
-- state_revisions every poll interval, which catches a lost notification (a
-- listening connection that dropped, say). See storage/_pg_changes.py.
CREATE TABLE state_revisions (
    kind TEXT COLLATE "C" PRIMARY KEY,
    revision BIGINT NOT NULL
);
INSERT INTO state_revisions (kind, revision) VALUES ('cas', 0), ('revocations', 0), ('crls', 0);

CREATE FUNCTION secinfra_note_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE state_revisions SET revision = revision + 1 WHERE kind = TG_ARGV[0];
    PERFORM pg_notify('secinfra_changes', TG_ARGV[0]);
    RETURN NULL;
END;
$$;

-- The CA set and its states. Recording an issued certificate updates only
-- cas.leaves_expire_by_ms, which no replica caches for the hot path (the
-- leader reads it before a rotation step), so it does not fire this.
CREATE TRIGGER cas_changed
    AFTER INSERT OR DELETE OR UPDATE OF state, activated_ms, retiring_ms, retired_ms ON cas
    FOR EACH STATEMENT EXECUTE FUNCTION secinfra_note_change('cas');
CREATE TRIGGER bundle_sequence_changed
    AFTER UPDATE ON meta
    FOR EACH ROW WHEN (NEW.key = 'bundle_sequence')
    EXECUTE FUNCTION secinfra_note_change('cas');
CREATE TRIGGER revocations_changed
    AFTER INSERT OR UPDATE OR DELETE ON revocations
    FOR EACH STATEMENT EXECUTE FUNCTION secinfra_note_change('revocations');
CREATE TRIGGER crls_changed
    AFTER INSERT OR UPDATE OR DELETE ON crls
    FOR EACH STATEMENT EXECUTE FUNCTION secinfra_note_change('crls');
