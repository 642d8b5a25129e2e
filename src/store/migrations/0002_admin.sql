-- Admin sessions (login tokens) and the audit log of admin actions.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    source     TEXT
);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    ts     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    source TEXT,
    detail TEXT
);
CREATE INDEX audit_log_ts ON audit_log(ts);
