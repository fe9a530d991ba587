-- 4: the keyed audit chain (the same change as SQLite's migration 4): each
-- entry names its rule ('sha256' for the entries written before this migration,
-- 'hmac-sha256' since) and the id of the audit key that made it.
ALTER TABLE audit_log ADD COLUMN chain TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE audit_log ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
