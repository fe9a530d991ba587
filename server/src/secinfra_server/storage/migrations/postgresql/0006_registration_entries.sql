-- 5: registration entries (the same table as SQLite's migration 5; see
-- storage/entry_tables.py). Selectors and DNS names are canonical JSON text:
-- the selectors sorted, so that one entry's set is one string and the UNIQUE
-- constraint refuses a second entry for the same node, ID and selectors.
CREATE TABLE registration_entries (
    id TEXT COLLATE "C" PRIMARY KEY,
    spiffe_id TEXT COLLATE "C" NOT NULL,
    parent_id TEXT COLLATE "C" NOT NULL,
    selectors TEXT COLLATE "C" NOT NULL,
    ttl_seconds INTEGER NOT NULL,
    dns_names TEXT COLLATE "C" NOT NULL,
    created_ms BIGINT NOT NULL,
    UNIQUE (parent_id, spiffe_id, selectors)
);
CREATE INDEX registration_entries_by_parent ON registration_entries (parent_id, created_ms, id);
CREATE INDEX registration_entries_by_age ON registration_entries (created_ms, id);
