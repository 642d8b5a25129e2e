-- Budgets per user (keys have theirs since 0001).
ALTER TABLE users ADD COLUMN budget_usd_nanos INTEGER;
ALTER TABLE users ADD COLUMN budget_period TEXT;
