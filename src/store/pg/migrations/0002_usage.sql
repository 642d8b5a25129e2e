-- Usage on PostgreSQL (src/store/pg_usage): the events, one row per request id written
-- by whichever instance delivers it first, and the dashboard's per-day rollups, kept
-- by the writer's transaction from the rows it actually inserted. The columns and
-- their meaning are SQLite's (migrations 0001, 0006, 0007, 0009, 0010); `id` takes the
-- place of SQLite's rowid for the request log's paging.
CREATE TABLE usage_events (
    request_id         TEXT PRIMARY KEY,
    id                 BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    ts                 BIGINT NOT NULL, -- unix milliseconds
    key_id             TEXT,
    user_id            BIGINT,
    upstream           TEXT,
    model_requested    TEXT,
    model_served       TEXT,
    dialect            TEXT NOT NULL,
    endpoint           TEXT,
    streamed           BOOLEAN NOT NULL,
    status             BIGINT NOT NULL,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    reasoning_tokens   BIGINT NOT NULL DEFAULT 0,
    estimated          BOOLEAN NOT NULL DEFAULT false,
    cost_nanos         BIGINT NOT NULL DEFAULT 0,
    ttfb_ms            BIGINT,
    total_ms           BIGINT NOT NULL,
    attempts           BIGINT,
    upstream_kind      TEXT
);
-- Reports, budget sums and pruning select by time; the request log pages by (ts, id),
-- a member's own log by user.
CREATE INDEX usage_events_ts ON usage_events (ts, id);
CREATE INDEX usage_events_user_ts ON usage_events (user_id, ts, id);

-- Totals per UTC day and (key, user, upstream, model); absent values as '-' and user 0
-- so that the primary key holds no NULL.
CREATE TABLE usage_daily (
    day                BIGINT NOT NULL, -- days since 1970-01-01, UTC
    key_id             TEXT NOT NULL,
    user_id            BIGINT NOT NULL,
    upstream           TEXT NOT NULL,
    model              TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    errors             BIGINT NOT NULL,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cache_read_tokens  BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    estimated          BIGINT NOT NULL,
    cost_nanos         BIGINT NOT NULL,
    PRIMARY KEY (day, key_id, user_id, upstream, model)
);
CREATE INDEX usage_daily_key ON usage_daily (key_id, day);
CREATE INDEX usage_daily_user ON usage_daily (user_id, day);

-- 2xx answers per UTC day and latency bucket (the bounds of SQLite's latency_bounds,
-- computed by the writer: src/store/pg_usage/write.rs).
CREATE TABLE usage_latency_daily (
    day      BIGINT NOT NULL,
    upper_ms BIGINT NOT NULL,
    total_n  BIGINT NOT NULL,
    ttfb_n   BIGINT NOT NULL,
    PRIMARY KEY (day, upper_ms)
);
