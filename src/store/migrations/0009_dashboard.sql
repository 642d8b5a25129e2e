-- What the web dashboard reads (src/store/rollups.rs, src/store/request_log.rs):
-- per-day rollups of usage events, kept by the usage writer in the same transaction as
-- the events, so that the overview and usage pages read a few thousand rows instead of
-- scanning every event; and the one index the request log needs.

-- Totals per UTC day and per (key, user, upstream, model): the groups of GET /admin/usage.
-- Absent values are stored the way that report shows them ('-', user 0) so that the
-- primary key holds no NULL (NULLs never conflict, and the writer's upsert would add a
-- row instead of adding to one).
CREATE TABLE usage_daily (
    day                INTEGER NOT NULL, -- days since 1970-01-01, UTC
    key_id             TEXT NOT NULL,
    user_id            INTEGER NOT NULL,
    upstream           TEXT NOT NULL,
    model              TEXT NOT NULL,    -- served, else requested
    requests           INTEGER NOT NULL,
    errors             INTEGER NOT NULL, -- status >= 400
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens   INTEGER NOT NULL,
    estimated          INTEGER NOT NULL,
    cost_nanos         INTEGER NOT NULL,
    PRIMARY KEY (day, key_id, user_id, upstream, model)
) WITHOUT ROWID;
-- Budgets over all time (by key, by user) and a member's own pages (by user). The
-- writer touches a few rollup rows per batch, not per event, so these cost it little.
CREATE INDEX usage_daily_key ON usage_daily(key_id, day);
CREATE INDEX usage_daily_user ON usage_daily(user_id, day);

-- Latency histogram buckets (upper bounds in ms, about 12 per decade: 1, 2, 3, 4, 5, 6,
-- 8, 10, 12, 15, 20, 25, 30, 40, ...), so percentiles come from counts per bucket. The
-- last bound catches everything longer.
CREATE TABLE latency_bounds (upper_ms INTEGER PRIMARY KEY);
WITH RECURSIVE decade(p) AS (SELECT 1 UNION ALL SELECT p * 10 FROM decade WHERE p < 1000000),
     mantissa(v) AS (VALUES (10), (12), (15), (20), (25), (30), (40), (50), (60), (80))
INSERT INTO latency_bounds (upper_ms)
SELECT DISTINCT v * p / 10 FROM decade, mantissa WHERE true
UNION SELECT 0
UNION SELECT 9223372036854775807;

-- Requests answered 2xx per UTC day and latency bucket: total duration and time to
-- first byte.
CREATE TABLE usage_latency_daily (
    day      INTEGER NOT NULL,
    upper_ms INTEGER NOT NULL,
    total_n  INTEGER NOT NULL,
    ttfb_n   INTEGER NOT NULL,
    PRIMARY KEY (day, upper_ms)
) WITHOUT ROWID;

-- The rollups of the events already stored (the writer keeps them from now on).
INSERT INTO usage_daily (day, key_id, user_id, upstream, model, requests, errors,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    estimated, cost_nanos)
SELECT ts / 86400000, COALESCE(key_id, '-'), COALESCE(user_id, 0), COALESCE(upstream, '-'),
    COALESCE(model_served, model_requested, '-'), COUNT(*), SUM(status >= 400),
    SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
    SUM(reasoning_tokens), SUM(estimated), SUM(cost_nanos)
FROM usage_events WHERE true GROUP BY 1, 2, 3, 4, 5;

INSERT INTO usage_latency_daily (day, upper_ms, total_n, ttfb_n)
SELECT day, upper_ms, SUM(t), SUM(f) FROM (
    SELECT ts / 86400000 AS day,
        (SELECT MIN(upper_ms) FROM latency_bounds WHERE upper_ms >= total_ms) AS upper_ms,
        1 AS t, 0 AS f
    FROM usage_events WHERE status BETWEEN 200 AND 299
    UNION ALL
    SELECT ts / 86400000, (SELECT MIN(upper_ms) FROM latency_bounds WHERE upper_ms >= ttfb_ms), 0, 1
    FROM usage_events WHERE status BETWEEN 200 AND 299 AND ttfb_ms IS NOT NULL
) WHERE true GROUP BY day, upper_ms;

-- How many upstreams of the fallback chain a request tried (the request log shows it;
-- NULL for the events stored before this migration).
ALTER TABLE usage_events ADD COLUMN attempts INTEGER;

-- The request log, newest first, of one user (a member's own page, or the user and
-- key filters): one more B-tree insert per event for the writer.
CREATE INDEX usage_events_user_ts ON usage_events(user_id, ts);
