-- Data keys (gateway-key HMAC key, provider-key encryption key), each wrapped by the
-- master key, so that rotating the master key re-wraps them without touching hashes.
CREATE TABLE data_keys (
    purpose    TEXT PRIMARY KEY,
    nonce      BLOB NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER
);
