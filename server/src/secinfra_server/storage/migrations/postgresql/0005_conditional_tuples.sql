-- 5: conditional tuples (the same change as SQLite's migration 5): the
-- condition a tuple was written with, as canonical JSON {"name": ..., "context":
-- {...}}; '' for an unconditional tuple. Not part of the key: one tuple per
-- object, relation and user, as in OpenFGA.
ALTER TABLE authz_tuples ADD COLUMN condition_json TEXT NOT NULL DEFAULT '';
