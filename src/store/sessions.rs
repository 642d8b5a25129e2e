//! Queries on `sessions`: admin login sessions. The token a client holds is signed
//! (see `crate::admin::auth`); the row is what makes it revocable, so every token is
//! checked against it after its signature.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use tollgate_filters::Role;

use super::users::role_column;
use super::{Store, StoreError};

/// A session with what authorization needs about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// The user was deleted (its sessions are revoked with it; checked anyway).
    pub user_deleted: bool,
    pub created_at: i64,
    pub expires_at: i64,
    /// May lie a few seconds ahead: a session replaced by a sliding refresh stays valid
    /// that long for requests already sent with it.
    pub revoked_at: Option<i64>,
}

/// A session to create.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub source: Option<&'a str>,
}

/// Inserts `s` into `family` (a login's first session is its own family).
fn insert(conn: &rusqlite::Connection, s: &NewSession<'_>, family: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, source, family) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![s.id, s.user_id, s.created_at, s.expires_at, s.source, family],
    )?;
    Ok(())
}

impl Store {
    pub fn create_session(&self, s: &NewSession<'_>) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.create_session(s);
        }
        insert(&*self.conn()?, s, s.id)
    }

    /// A session by id, whatever its state; the caller decides what is still valid.
    pub fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.session(id);
        }
        let conn = self.conn()?;
        let r = conn
            .query_row(
                "SELECT s.id, s.user_id, u.username, u.role, u.deleted_at IS NOT NULL, s.created_at, s.expires_at, s.revoked_at \
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ?1",
                [id],
                |r| {
                    Ok(SessionRow {
                        id: r.get(0)?,
                        user_id: r.get(1)?,
                        username: r.get(2)?,
                        role: role_column(r, 3)?,
                        user_deleted: r.get(4)?,
                        created_at: r.get(5)?,
                        expires_at: r.get(6)?,
                        revoked_at: r.get(7)?,
                    })
                },
            )
            .optional()?;
        Ok(r)
    }

    /// Replaces session `old` with `new` (a sliding refresh): `old` is revoked as of
    /// `old_until` and `new` created in its family, in one transaction. `Ok(false)`, creating nothing,
    /// when `old` was already revoked or replaced: of concurrent refreshes only one
    /// makes a new session.
    pub fn replace_session(
        &self,
        old: &str,
        old_until: i64,
        new: &NewSession<'_>,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.replace_session(old, old_until, new);
        }
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![old, old_until],
        )?;
        if n == 0 {
            return Ok(false);
        }
        let family: String = tx.query_row(
            "SELECT COALESCE(family, id) FROM sessions WHERE id = ?1",
            [old],
            |r| r.get(0),
        )?;
        insert(&tx, new, &family)?;
        tx.commit()?;
        Ok(true)
    }

    /// Ends the login session `id` belongs to as of `now`: `id`, the sessions it
    /// replaced (still in their grace period) and the one that replaced it. `false` when
    /// there is no such session.
    pub fn revoke_session(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.revoke_session(id, now);
        }
        let n = self.conn()?.execute(
            "UPDATE sessions SET revoked_at = MIN(COALESCE(revoked_at, ?2), ?2) \
             WHERE family = (SELECT COALESCE(family, id) FROM sessions WHERE id = ?1) OR id = ?1",
            params![id, now],
        )?;
        Ok(n > 0)
    }

    /// Deletes sessions that can no longer be used (expired or revoked by `now`);
    /// returns how many.
    pub fn purge_sessions(&self, now: i64) -> Result<usize, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.purge_sessions(now);
        }
        Ok(self.conn()?.execute(
            "DELETE FROM sessions WHERE expires_at <= ?1 OR revoked_at <= ?1",
            [now],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{add_user, on_both_backends, TestBackend};

    on_both_backends!(
        a_logout_ends_every_session_of_its_login_and_no_other,
        create_replace_revoke_purge,
    );

    fn setup(b: &TestBackend) -> (&Store, i64) {
        let u = add_user(&b.store, "root", Role::Admin, 1);
        (&b.store, u.id)
    }

    fn new(id: &str, user_id: i64, at: i64) -> NewSession<'_> {
        NewSession {
            id,
            user_id,
            created_at: at,
            expires_at: at + 100,
            source: Some("127.0.0.1"),
        }
    }

    fn a_logout_ends_every_session_of_its_login_and_no_other(b: &TestBackend) {
        let (s, uid) = setup(b);
        s.create_session(&new("a", uid, 10)).unwrap();
        s.create_session(&new("other", uid, 10)).unwrap();
        assert!(s.replace_session("a", 70, &new("b", uid, 60)).unwrap());
        assert!(s.replace_session("b", 90, &new("c", uid, 80)).unwrap());
        // Logging out with the newest token ends its predecessors' grace at once.
        assert!(s.revoke_session("c", 85).unwrap());
        let revoked = |id: &str| s.session(id).unwrap().unwrap().revoked_at;
        assert_eq!(
            [revoked("a"), revoked("b"), revoked("c")],
            [Some(70), Some(85), Some(85)]
        );
        assert_eq!(revoked("other"), None);
        // With a predecessor's token (still in its grace period), the same.
        s.create_session(&new("d", uid, 100)).unwrap();
        assert!(s.replace_session("d", 130, &new("e", uid, 120)).unwrap());
        assert!(s.revoke_session("d", 121).unwrap());
        assert_eq!([revoked("d"), revoked("e")], [Some(121), Some(121)]);
        assert_eq!(revoked("other"), None);
    }

    fn create_replace_revoke_purge(b: &TestBackend) {
        let (s, uid) = setup(b);
        s.create_session(&new("a", uid, 10)).unwrap();
        let row = s.session("a").unwrap().unwrap();
        assert_eq!(
            (
                row.username.as_str(),
                row.role,
                row.expires_at,
                row.revoked_at
            ),
            ("root", Role::Admin, 110, None)
        );
        assert!(!row.user_deleted);
        assert!(s.session("nope").unwrap().is_none());

        assert!(s.replace_session("a", 70, &new("b", uid, 60)).unwrap());
        // A second, concurrent refresh of the same session makes nothing.
        assert!(!s.replace_session("a", 71, &new("c", uid, 61)).unwrap());
        assert!(s.session("c").unwrap().is_none());
        assert_eq!(s.session("a").unwrap().unwrap().revoked_at, Some(70));

        // Logout ends the grace period at once; revoking twice keeps the earliest.
        assert!(s.revoke_session("a", 65).unwrap());
        assert!(s.revoke_session("a", 68).unwrap());
        assert_eq!(s.session("a").unwrap().unwrap().revoked_at, Some(65));
        assert!(!s.revoke_session("nope", 65).unwrap());
        // ... and with it the session that replaced it: one login, one session.
        assert_eq!(s.session("b").unwrap().unwrap().revoked_at, Some(65));

        assert_eq!(s.purge_sessions(64).unwrap(), 0);
        assert_eq!(s.purge_sessions(65).unwrap(), 2);
        assert!(s.session("b").unwrap().is_none());
    }
}
