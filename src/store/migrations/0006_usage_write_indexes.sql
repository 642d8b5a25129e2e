-- Usage events are written once per request and read rarely, in reports and budget
-- sums that select by time (usage_events_ts). No query selects by key or by user alone,
-- yet each of these two indexes cost a B-tree insert per request on the writer
-- (load-tests/RESULTS.md): they go.
DROP INDEX IF EXISTS usage_events_key;
DROP INDEX IF EXISTS usage_events_user;
