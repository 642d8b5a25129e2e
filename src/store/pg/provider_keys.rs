//! `provider_keys` on PostgreSQL: the queries of `store/provider_keys.rs`. The owner
//! is matched with `IS NOT DISTINCT FROM` (SQLite's `IS`); setting and deleting a key
//! announce `provider-keys` in their own transaction.

use super::{client, notify, PgStore};
use crate::store::{ProviderKeyRow, ProviderKeyStatus, StoreError};

impl PgStore {
    /// The owner's user id; `UnknownUser` for a name that is not a user.
    pub(crate) fn provider_key_owner(&self, user: Option<&str>) -> Result<Option<i64>, StoreError> {
        let Some(name) = user.map(str::to_owned) else {
            return Ok(None);
        };
        self.run(move |pool| async move {
            let row = client(&pool)
                .await?
                .query_opt("SELECT id FROM users WHERE username = $1", &[&name])
                .await?;
            match row {
                Some(r) => Ok(Some(r.try_get(0)?)),
                None => Err(StoreError::UnknownUser(name)),
            }
        })
    }

    /// Stores the encrypted key of `upstream` and `owner`, replacing an earlier one
    /// (keeping its `created_at`).
    pub(crate) fn put_provider_key(
        &self,
        upstream: &str,
        owner: Option<i64>,
        nonce: Vec<u8>,
        ciphertext: Vec<u8>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (upstream, origin) = (upstream.to_owned(), self.origin().to_owned());
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            // Serializes writers of one owner's key, a global one (no row to lock yet)
            // included, as SQLite's IMMEDIATE does.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('tollgate.provider_keys'), hashtext($1))",
                &[&upstream],
            )
            .await?;
            let updated = tx
                .execute(
                    "UPDATE provider_keys SET nonce = $3, ciphertext = $4, updated_at = $5 WHERE upstream = $1 AND user_id IS NOT DISTINCT FROM $2",
                    &[&upstream, &owner, &nonce, &ciphertext, &now],
                )
                .await?;
            if updated == 0 {
                tx.execute(
                    "INSERT INTO provider_keys (upstream, user_id, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    &[&upstream, &owner, &nonce, &ciphertext, &now],
                )
                .await?;
            }
            notify(&tx, &origin, &["provider-keys"]).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub(crate) fn delete_provider_key(
        &self,
        upstream: &str,
        owner: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (upstream, origin) = (upstream.to_owned(), self.origin().to_owned());
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "DELETE FROM provider_keys WHERE upstream = $1 AND user_id IS NOT DISTINCT FROM $2",
                    &[&upstream, &owner],
                )
                .await?;
            if n > 0 {
                notify(&tx, &origin, &["provider-keys"]).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    pub(crate) fn provider_key_status(
        &self,
        upstream: &str,
        owner: Option<i64>,
    ) -> Result<Option<ProviderKeyStatus>, StoreError> {
        let upstream = upstream.to_owned();
        self.run(move |pool| async move {
            let row = client(&pool)
                .await?
                .query_opt(
                    "SELECT created_at, updated_at FROM provider_keys WHERE upstream = $1 AND user_id IS NOT DISTINCT FROM $2",
                    &[&upstream, &owner],
                )
                .await?;
            row.map(|r| {
                Ok(ProviderKeyStatus {
                    created_at: r.try_get(0)?,
                    updated_at: r.try_get(1)?,
                })
            })
            .transpose()
        })
    }

    pub(crate) fn all_provider_keys(&self) -> Result<Vec<ProviderKeyRow>, StoreError> {
        self.run(|pool| async move {
            let rows = client(&pool)
                .await?
                .query(
                    "SELECT id, upstream, user_id, nonce, ciphertext, created_at, updated_at FROM provider_keys ORDER BY id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ProviderKeyRow {
                        id: r.try_get(0)?,
                        upstream: r.try_get(1)?,
                        user_id: r.try_get(2)?,
                        nonce: r.try_get(3)?,
                        ciphertext: r.try_get(4)?,
                        created_at: r.try_get(5)?,
                        updated_at: r.try_get(6)?,
                    })
                })
                .collect()
        })
    }
}
