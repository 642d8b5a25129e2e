-- Dialect translation (CONTRACT section 7): a request may be served by an upstream of
-- another kind than the client's dialect, so the usage event records both; `dialect`
-- stays the client's. NULL for rows written before and for requests never routed.
ALTER TABLE usage_events ADD COLUMN upstream_kind TEXT;
