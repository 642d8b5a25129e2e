//! `users` on PostgreSQL: the queries of `store/users.rs`, same rules. The last-admin
//! checks lock the table against other writers of users (SQLite's IMMEDIATE); a
//! deletion or an update announces `keys` in its own transaction.

use tokio_postgres::Row;
use tollgate_filters::Role;

use super::{client, is_unique_violation, notify, PgStore};
use crate::store::{StoreError, UserDeletion, UserRow, UserUpdated};

/// The columns [`user`] reads, in its order.
const USER_COLUMNS: &str = "id, username, role, created_at, budget_usd_nanos, budget_period";

/// A role column; anything but the two known roles is corruption.
pub(super) fn role(r: &Row, idx: usize) -> Result<Role, StoreError> {
    let text: String = r.try_get(idx)?;
    Role::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown role '{text}'")))
}

pub(super) fn user(r: &Row) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        role: role(r, 2)?,
        created_at: r.try_get(3)?,
        budget_usd_nanos: r.try_get(4)?,
        budget_period: r.try_get(5)?,
    })
}

/// Serializes writers of users for a last-admin check; inserts of keys and sessions
/// (which only take a row share of users) go on.
const LOCK_USERS: &str = "LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE";

/// What [`PgStore::update_user`] writes: the checked user, and whether the budget was
/// given at all (else it stays).
pub(crate) struct UserWrite {
    pub role: Role,
    pub password_hash: Option<String>,
    pub budget_given: bool,
    pub budget: Option<(i64, String)>,
}

impl PgStore {
    pub(crate) fn insert_user(
        &self,
        username: &str,
        role: Role,
        password_hash: Option<&str>,
        budget: Option<(i64, &str)>,
        now: i64,
    ) -> Result<UserRow, StoreError> {
        let (nanos, period) = budget.map_or((None, None), |(n, p)| (Some(n), Some(p.to_owned())));
        let (username, hash) = (username.to_owned(), password_hash.map(str::to_owned));
        self.run(move |pool| async move {
            let c = client(&pool).await?;
            let inserted = c
                .query_one(
                    "INSERT INTO users (username, role, password_hash, created_at, budget_usd_nanos, budget_period) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                    &[&username, &role.as_str(), &hash, &now, &nanos, &period],
                )
                .await;
            match inserted {
                Ok(r) => Ok(UserRow {
                    id: r.try_get(0)?,
                    username,
                    role,
                    created_at: now,
                    budget_usd_nanos: nanos,
                    budget_period: period,
                }),
                Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateUser(username)),
                Err(e) => Err(e.into()),
            }
        })
    }

    pub(crate) fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.run(|pool| async move {
            let sql =
                format!("SELECT {USER_COLUMNS} FROM users WHERE deleted_at IS NULL ORDER BY id");
            let rows = client(&pool).await?.query(&sql, &[]).await?;
            rows.iter().map(user).collect()
        })
    }

    /// A user not deleted, by name; with its password hash.
    pub(crate) fn user_for_login(
        &self,
        username: &str,
    ) -> Result<Option<(UserRow, Option<String>)>, StoreError> {
        let username = username.to_owned();
        self.run(move |pool| async move {
            let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1 AND deleted_at IS NULL");
            let row = client(&pool).await?.query_opt(&sql, &[&username]).await?;
            row.map(|r| Ok((user(&r)?, r.try_get(6)?))).transpose()
        })
    }

    pub(crate) fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        self.run(move |pool| async move {
            let sql =
                format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL");
            let row = client(&pool).await?.query_opt(&sql, &[&id]).await?;
            row.as_ref().map(user).transpose()
        })
    }

    pub(crate) fn delete_user(
        &self,
        id: i64,
        actor: i64,
        now: i64,
    ) -> Result<UserDeletion, StoreError> {
        let origin = self.origin().to_owned();
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            tx.batch_execute(LOCK_USERS).await?;
            let sql =
                format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL");
            let Some(found) = tx.query_opt(&sql, &[&id]).await? else {
                return Ok(UserDeletion::NotFound);
            };
            let found = user(&found)?;
            if found.id == actor {
                return Ok(UserDeletion::Yourself);
            }
            if found.role == Role::Admin && admins(&tx).await? <= 1 {
                return Ok(UserDeletion::LastAdmin);
            }
            tx.execute(
                "UPDATE users SET deleted_at = $2 WHERE id = $1",
                &[&id, &now],
            )
            .await?;
            let keys_revoked = tx
                .execute(
                    "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
                    &[&id, &now],
                )
                .await?;
            let sessions_revoked = end_sessions(&tx, id, now).await?;
            notify(&tx, &origin, &["keys"]).await?;
            tx.commit().await?;
            Ok(UserDeletion::Deleted {
                user: found,
                keys_revoked: keys_revoked as usize,
                sessions_revoked,
            })
        })
    }

    pub(crate) fn update_user(
        &self,
        id: i64,
        w: UserWrite,
        now: i64,
    ) -> Result<UserUpdated, StoreError> {
        let origin = self.origin().to_owned();
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            tx.batch_execute(LOCK_USERS).await?;
            let sql =
                format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL");
            let Some(current) = tx.query_opt(&sql, &[&id]).await? else {
                return Ok(UserUpdated::NotFound);
            };
            let demoted = user(&current)?.role == Role::Admin && w.role != Role::Admin;
            if demoted && admins(&tx).await? <= 1 {
                return Ok(UserUpdated::LastAdmin);
            }
            let (nanos, period) = w.budget.unzip();
            tx.execute(
                "UPDATE users SET role = $2, password_hash = COALESCE($3, password_hash), \
                 budget_usd_nanos = CASE WHEN $4 THEN $5 ELSE budget_usd_nanos END, \
                 budget_period = CASE WHEN $4 THEN $6 ELSE budget_period END WHERE id = $1",
                &[
                    &id,
                    &w.role.as_str(),
                    &w.password_hash,
                    &w.budget_given,
                    &nanos,
                    &period,
                ],
            )
            .await?;
            let sessions_ended = if demoted || w.password_hash.is_some() {
                end_sessions(&tx, id, now).await?
            } else {
                0
            };
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
            let after = user(&tx.query_one(&sql, &[&id]).await?)?;
            notify(&tx, &origin, &["keys"]).await?;
            tx.commit().await?;
            Ok(UserUpdated::Updated {
                user: after,
                sessions_ended,
            })
        })
    }

    /// The id of user `name`, created (a member) when there is none.
    pub(crate) fn ensure_user(&self, name: &str, now: i64) -> Result<i64, StoreError> {
        let name = name.to_owned();
        self.run(move |pool| async move {
            let c = client(&pool).await?;
            c.execute(
                "INSERT INTO users (username, role, created_at) VALUES ($1, 'member', $2) ON CONFLICT (username) DO NOTHING",
                &[&name, &now],
            )
            .await?;
            let row = c
                .query_one("SELECT id FROM users WHERE username = $1", &[&name])
                .await?;
            Ok(row.try_get(0)?)
        })
    }
}

/// Admins not deleted.
async fn admins(tx: &deadpool_postgres::Transaction<'_>) -> Result<i64, StoreError> {
    let r = tx
        .query_one(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND deleted_at IS NULL",
            &[],
        )
        .await?;
    Ok(r.try_get(0)?)
}

/// Ends every session of user `id` still usable at `now`; how many.
async fn end_sessions(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    now: i64,
) -> Result<usize, StoreError> {
    let n = tx
        .execute(
            "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND (revoked_at IS NULL OR revoked_at > $2)",
            &[&id, &now],
        )
        .await?;
    Ok(n as usize)
}
