//! `sessions` on PostgreSQL: the queries of `store/sessions.rs`, same rules.

use super::users::role;
use super::{client, PgStore};
use crate::store::{NewSession, SessionRow, StoreError};

/// A [`NewSession`] with owned fields, to move into the store's runtime.
struct Owned {
    id: String,
    user_id: i64,
    created_at: i64,
    expires_at: i64,
    source: Option<String>,
}

impl From<&NewSession<'_>> for Owned {
    fn from(s: &NewSession<'_>) -> Self {
        Owned {
            id: s.id.to_owned(),
            user_id: s.user_id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            source: s.source.map(str::to_owned),
        }
    }
}

const INSERT: &str = "INSERT INTO sessions (id, user_id, created_at, expires_at, source, family) VALUES ($1, $2, $3, $4, $5, $6)";

impl PgStore {
    pub(crate) fn create_session(&self, s: &NewSession<'_>) -> Result<(), StoreError> {
        let s = Owned::from(s);
        self.run(move |pool| async move {
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &s.id,
                &s.user_id,
                &s.created_at,
                &s.expires_at,
                &s.source,
                &s.id,
            ];
            client(&pool).await?.execute(INSERT, &params).await?;
            Ok(())
        })
    }

    pub(crate) fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let id = id.to_owned();
        self.run(move |pool| async move {
            let row = client(&pool)
                .await?
                .query_opt(
                    "SELECT s.id, s.user_id, u.username, u.role, u.deleted_at IS NOT NULL, s.created_at, s.expires_at, s.revoked_at \
                     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
                    &[&id],
                )
                .await?;
            row.map(|r| {
                Ok(SessionRow {
                    id: r.try_get(0)?,
                    user_id: r.try_get(1)?,
                    username: r.try_get(2)?,
                    role: role(&r, 3)?,
                    user_deleted: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                    expires_at: r.try_get(6)?,
                    revoked_at: r.try_get(7)?,
                })
            })
            .transpose()
        })
    }

    /// A sliding refresh: `old` revoked as of `old_until`, `new` created in its family;
    /// `false` (nothing created) when `old` was revoked or replaced already. The
    /// conditional UPDATE takes the row lock, so of concurrent refreshes one wins.
    pub(crate) fn replace_session(
        &self,
        old: &str,
        old_until: i64,
        new: &NewSession<'_>,
    ) -> Result<bool, StoreError> {
        let (old, new) = (old.to_owned(), Owned::from(new));
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            let family: Option<String> = tx
                .query_opt(
                    "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING COALESCE(family, id)",
                    &[&old, &old_until],
                )
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            let Some(family) = family else {
                return Ok(false);
            };
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
                &new.id,
                &new.user_id,
                &new.created_at,
                &new.expires_at,
                &new.source,
                &family,
            ];
            tx.execute(INSERT, &params).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub(crate) fn revoke_session(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.run(move |pool| async move {
            let n = client(&pool)
                .await?
                .execute(
                    "UPDATE sessions SET revoked_at = LEAST(COALESCE(revoked_at, $2), $2) \
                     WHERE family = (SELECT COALESCE(family, id) FROM sessions WHERE id = $1) OR id = $1",
                    &[&id, &now],
                )
                .await?;
            Ok(n > 0)
        })
    }

    pub(crate) fn purge_sessions(&self, now: i64) -> Result<usize, StoreError> {
        self.run(move |pool| async move {
            let n = client(&pool)
                .await?
                .execute(
                    "DELETE FROM sessions WHERE expires_at <= $1 OR revoked_at <= $1",
                    &[&now],
                )
                .await?;
            Ok(n as usize)
        })
    }
}
