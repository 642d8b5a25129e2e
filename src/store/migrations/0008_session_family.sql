-- A sliding refresh replaces a session with a new one; both belong to the same login,
-- its family (the id of the login's first session), so that a logout ends every session
-- of the login at once, the predecessor still in its grace period included.
ALTER TABLE sessions ADD COLUMN family TEXT;
UPDATE sessions SET family = id;
CREATE INDEX sessions_family ON sessions(family);
