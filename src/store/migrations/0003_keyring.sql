-- Data keys (gateway-key HMAC key, provider-key encryption key), each wrapped by the
-- master key, so that rotating the master key re-wraps them without touching hashes.
CREATE TABLE data_keys (
    purpose    TEXT PRIMARY KEY,
    nonce      BLOB NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER
);

-- SQLite treats NULLs as distinct in provider_keys' UNIQUE (upstream, user_id): this
-- keeps global keys (no user) to one per upstream as well.
CREATE UNIQUE INDEX provider_keys_one_global ON provider_keys(upstream) WHERE user_id IS NULL;
