-- Soft deletion of users, for the admin API. A deleted user's row stays so that usage
-- reports keep naming who spent what and the keys it owned (revoked with it) keep their
-- foreign key; its name stays taken. Sessions are looked up by user on deletion.
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
CREATE INDEX sessions_user ON sessions(user_id);
