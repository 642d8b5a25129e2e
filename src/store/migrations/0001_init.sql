-- Users, gateway keys, per-user provider keys and usage events. Times are unix seconds.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    password_hash TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users(id),
    name             TEXT,
    secret_hmac      BLOB NOT NULL,
    prefix           TEXT NOT NULL,
    models           TEXT NOT NULL DEFAULT '[]',
    budget_usd_nanos INTEGER,
    budget_period    TEXT,
    rpm              INTEGER,
    tpm              INTEGER,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    revoked_at       INTEGER,
    last_used_at     INTEGER
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE provider_keys (
    id         INTEGER PRIMARY KEY,
    upstream   TEXT NOT NULL,
    user_id    INTEGER REFERENCES users(id),
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (upstream, user_id)
);

CREATE TABLE usage_events (
    request_id         TEXT PRIMARY KEY,
    ts                 INTEGER NOT NULL, -- unix milliseconds
    key_id             TEXT,
    user_id            INTEGER,
    upstream           TEXT,
    model_requested    TEXT,
    model_served       TEXT,
    dialect            TEXT NOT NULL,
    endpoint           TEXT,
    streamed           INTEGER NOT NULL,
    status             INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL DEFAULT 0,
    output_tokens      INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens  INTEGER NOT NULL DEFAULT 0,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    reasoning_tokens   INTEGER NOT NULL DEFAULT 0,
    estimated          INTEGER NOT NULL DEFAULT 0,
    cost_nanos         INTEGER NOT NULL DEFAULT 0,
    ttfb_ms            INTEGER,
    total_ms           INTEGER NOT NULL
);
CREATE INDEX usage_events_ts ON usage_events(ts);
CREATE INDEX usage_events_key ON usage_events(key_id);
CREATE INDEX usage_events_user ON usage_events(user_id);
