//! `api_keys` on PostgreSQL: the queries of `store/keys.rs`, same rules. Creating,
//! updating and revoking a key announce `keys` in their own transaction.

use tokio_postgres::Row;

use super::users::role;
use super::{client, notify, PgStore};
use crate::store::{AuthKeyRow, KeyRow, StoreError};

const AUTH_SELECT: &str = "SELECT k.id, k.secret_hmac, k.user_id, u.username, u.role, k.models, k.expires_at, k.revoked_at, \
     k.budget_usd_nanos, k.budget_period, u.budget_usd_nanos, u.budget_period, k.rpm, k.tpm \
     FROM api_keys k JOIN users u ON u.id = k.user_id";

const KEY_SELECT: &str = "SELECT k.id, u.username, k.name, k.prefix, k.models, k.budget_usd_nanos, k.budget_period, k.rpm, k.tpm, \
     k.created_at, k.expires_at, k.revoked_at, k.last_used_at \
     FROM api_keys k JOIN users u ON u.id = k.user_id";

/// The scopes column: a row that does not decode is an error (empty would widen the
/// key to every model).
fn models(r: &Row, idx: usize) -> Result<Vec<String>, StoreError> {
    let text: String = r.try_get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("api_keys.models does not decode: {e}")))
}

fn pair(nanos: Option<i64>, period: Option<String>) -> Option<(i64, String)> {
    Some((nanos?, period.unwrap_or_else(|| "month".to_owned())))
}

fn auth_row(r: &Row) -> Result<AuthKeyRow, StoreError> {
    Ok(AuthKeyRow {
        id: r.try_get(0)?,
        secret_hmac: r.try_get(1)?,
        user_id: r.try_get(2)?,
        username: r.try_get(3)?,
        role: role(r, 4)?,
        models: models(r, 5)?,
        expires_at: r.try_get(6)?,
        revoked_at: r.try_get(7)?,
        budget: pair(r.try_get(8)?, r.try_get(9)?),
        user_budget: pair(r.try_get(10)?, r.try_get(11)?),
        rpm: r
            .try_get::<_, Option<i64>>(12)?
            .and_then(|v| u32::try_from(v).ok()),
        tpm: r
            .try_get::<_, Option<i64>>(13)?
            .and_then(|v| u64::try_from(v).ok()),
    })
}

fn key_row(r: &Row) -> Result<KeyRow, StoreError> {
    let out_of_range = |col: &str| StoreError::Corrupt(format!("api_keys.{col} is out of range"));
    Ok(KeyRow {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        name: r.try_get(2)?,
        prefix: r.try_get(3)?,
        models: models(r, 4)?,
        budget_usd_nanos: r.try_get(5)?,
        budget_period: r.try_get(6)?,
        rpm: r
            .try_get::<_, Option<i64>>(7)?
            .map(|v| u32::try_from(v).map_err(|_| out_of_range("rpm")))
            .transpose()?,
        tpm: r
            .try_get::<_, Option<i64>>(8)?
            .map(|v| u64::try_from(v).map_err(|_| out_of_range("tpm")))
            .transpose()?,
        created_at: r.try_get(9)?,
        expires_at: r.try_get(10)?,
        revoked_at: r.try_get(11)?,
        last_used_at: r.try_get(12)?,
    })
}

/// The scopes as stored.
fn models_text(models: &[String]) -> String {
    serde_json::Value::from(models.to_vec()).to_string()
}

/// A tpm limit as stored; no real limit is anywhere near the top.
fn tpm_value(tpm: Option<u64>) -> Option<i64> {
    tpm.map(|t| i64::try_from(t).unwrap_or(i64::MAX))
}

impl PgStore {
    pub(crate) fn insert_key(
        &self,
        row: &KeyRow,
        user_id: i64,
        secret_hmac: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (row, origin) = (row.clone(), self.origin().to_owned());
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO api_keys (id, user_id, name, secret_hmac, prefix, models, budget_usd_nanos, budget_period, rpm, tpm, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                &[
                    &row.id,
                    &user_id,
                    &row.name,
                    &secret_hmac,
                    &row.prefix,
                    &models_text(&row.models),
                    &row.budget_usd_nanos,
                    &row.budget_period,
                    &row.rpm.map(i64::from),
                    &tpm_value(row.tpm),
                    &row.created_at,
                    &row.expires_at,
                ],
            )
            .await?;
            notify(&tx, &origin, &["keys"]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub(crate) fn list_keys(&self, user: Option<&str>) -> Result<Vec<KeyRow>, StoreError> {
        let user = user.map(str::to_owned);
        self.run(move |pool| async move {
            let sql = format!(
                "{KEY_SELECT} WHERE ($1::TEXT IS NULL OR u.username = $1) ORDER BY k.created_at, k.id COLLATE \"C\""
            );
            let rows = client(&pool).await?.query(&sql, &[&user]).await?;
            rows.iter().map(key_row).collect()
        })
    }

    pub(crate) fn key(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let id = id.to_owned();
        self.run(move |pool| async move {
            let sql = format!("{KEY_SELECT} WHERE k.id = $1");
            let row = client(&pool).await?.query_opt(&sql, &[&id]).await?;
            row.as_ref().map(key_row).transpose()
        })
    }

    /// Replaces key `id` with what `change` makes of it, the row locked meanwhile.
    pub(crate) fn update_key(
        &self,
        id: &str,
        change: impl FnOnce(KeyRow) -> Result<KeyRow, StoreError> + Send + 'static,
    ) -> Result<KeyRow, StoreError> {
        let (id, origin) = (id.to_owned(), self.origin().to_owned());
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            let sql = format!("{KEY_SELECT} WHERE k.id = $1 FOR UPDATE OF k");
            let current = tx
                .query_opt(&sql, &[&id])
                .await?
                .ok_or_else(|| StoreError::UnknownKey(id.clone()))?;
            let row = change(key_row(&current)?)?;
            tx.execute(
                "UPDATE api_keys SET name = $2, models = $3, budget_usd_nanos = $4, budget_period = $5, rpm = $6, tpm = $7, expires_at = $8 WHERE id = $1",
                &[
                    &row.id,
                    &row.name,
                    &models_text(&row.models),
                    &row.budget_usd_nanos,
                    &row.budget_period,
                    &row.rpm.map(i64::from),
                    &tpm_value(row.tpm),
                    &row.expires_at,
                ],
            )
            .await?;
            notify(&tx, &origin, &["keys"]).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    /// Revokes key `id` (keeping the first time); whether it exists.
    pub(crate) fn revoke_key(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let (id, origin) = (id.to_owned(), self.origin().to_owned());
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                    &[&id, &now],
                )
                .await?;
            if n > 0 {
                notify(&tx, &origin, &["keys"]).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    pub(crate) fn all_keys_for_auth(&self) -> Result<Vec<AuthKeyRow>, StoreError> {
        self.run(|pool| async move {
            let rows = client(&pool).await?.query(AUTH_SELECT, &[]).await?;
            rows.iter().map(auth_row).collect()
        })
    }

    pub(crate) fn auth_key(&self, id: &str) -> Result<Option<AuthKeyRow>, StoreError> {
        let id = id.to_owned();
        self.run(move |pool| async move {
            let sql = format!("{AUTH_SELECT} WHERE k.id = $1");
            let row = client(&pool).await?.query_opt(&sql, &[&id]).await?;
            row.as_ref().map(auth_row).transpose()
        })
    }

    /// Last-used times, in one transaction, in key order: instances touching the same
    /// keys lock them in the same order and never deadlock.
    pub(crate) fn touch_keys(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        let mut used = used.to_vec();
        used.sort();
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            let st = tx
                .prepare_cached("UPDATE api_keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $2) WHERE id = $1")
                .await?;
            for (id, t) in &used {
                tx.execute(&st, &[id, t]).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub(crate) fn has_gateway_keys(&self) -> Result<bool, StoreError> {
        self.run(|pool| async move {
            let row = client(&pool)
                .await?
                .query_one("SELECT EXISTS (SELECT 1 FROM api_keys)", &[])
                .await?;
            Ok(row.try_get(0)?)
        })
    }
}
