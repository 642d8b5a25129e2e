//! Queries on `api_keys`. The secret itself is never stored: only its HMAC.

use rusqlite::{params, OptionalExtension};
use tollgate_filters::{Role, Secret};

use super::{Store, StoreError};
use crate::secrets::{generate_gateway_key, KeyHasher};

/// What `key create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub user: String,
    pub name: Option<String>,
    pub models: Vec<String>,
    pub budget_usd_nanos: Option<i64>,
    pub budget_period: Option<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub expires_at: Option<i64>,
}

/// A key as listed: everything but its secret (which the store does not have).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub user: String,
    pub name: Option<String>,
    pub prefix: String,
    pub models: Vec<String>,
    pub budget_usd_nanos: Option<i64>,
    pub budget_period: Option<String>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// What authentication needs about a key.
#[derive(Debug, Clone)]
pub struct AuthKeyRow {
    pub id: String,
    pub secret_hmac: Vec<u8>,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub models: Vec<String>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const AUTH_SELECT: &str = "SELECT k.id, k.secret_hmac, k.user_id, u.username, u.role, k.models, k.expires_at, k.revoked_at \
     FROM api_keys k JOIN users u ON u.id = k.user_id";

fn auth_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuthKeyRow> {
    let role: String = r.get(4)?;
    let models: String = r.get(5)?;
    Ok(AuthKeyRow {
        id: r.get(0)?,
        secret_hmac: r.get(1)?,
        user_id: r.get(2)?,
        username: r.get(3)?,
        role: Role::parse(&role).unwrap_or(Role::Member),
        models: serde_json::from_str(&models).unwrap_or_default(),
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

impl Store {
    /// Creates a key for an existing user; returns its row and the full key, which is
    /// shown once and never stored.
    pub fn create_key(
        &self,
        hasher: &KeyHasher,
        new: NewKey,
        now: i64,
    ) -> Result<(KeyRow, Secret), StoreError> {
        let user = self
            .user_by_name(&new.user)?
            .ok_or_else(|| StoreError::UnknownUser(new.user.clone()))?;
        let (id, full, secret) = generate_gateway_key();
        let prefix: String = full.expose().chars().take(3 + id.len() + 1 + 4).collect();
        let models = serde_json::to_string(&new.models).unwrap_or_else(|_| "[]".into());
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO api_keys (id, user_id, name, secret_hmac, prefix, models, budget_usd_nanos, budget_period, rpm, tpm, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                id,
                user.id,
                new.name,
                hasher.hash(secret.expose()),
                prefix,
                models,
                new.budget_usd_nanos,
                new.budget_period,
                new.rpm,
                new.tpm.map(|t| t as i64),
                now,
                new.expires_at
            ],
        )?;
        let row = KeyRow {
            id,
            user: user.username,
            name: new.name,
            prefix,
            models: new.models,
            budget_usd_nanos: new.budget_usd_nanos,
            budget_period: new.budget_period,
            rpm: new.rpm,
            tpm: new.tpm,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        Ok((row, full))
    }

    pub fn list_keys(&self, user: Option<&str>) -> Result<Vec<KeyRow>, StoreError> {
        if let Some(u) = user {
            self.user_by_name(u)?
                .ok_or_else(|| StoreError::UnknownUser(u.to_owned()))?;
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT k.id, u.username, k.name, k.prefix, k.models, k.budget_usd_nanos, k.budget_period, k.rpm, k.tpm, \
             k.created_at, k.expires_at, k.revoked_at, k.last_used_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE (?1 IS NULL OR u.username = ?1) ORDER BY k.created_at, k.id",
        )?;
        let rows = st
            .query_map([user], |r| {
                let models: String = r.get(4)?;
                Ok(KeyRow {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    name: r.get(2)?,
                    prefix: r.get(3)?,
                    models: serde_json::from_str(&models).unwrap_or_default(),
                    budget_usd_nanos: r.get(5)?,
                    budget_period: r.get(6)?,
                    rpm: r.get(7)?,
                    tpm: r.get::<_, Option<i64>>(8)?.map(|t| t as u64),
                    created_at: r.get(9)?,
                    expires_at: r.get(10)?,
                    revoked_at: r.get(11)?,
                    last_used_at: r.get(12)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Revokes a key; revoking twice keeps the first time.
    pub fn revoke_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let n = conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownKey(id.to_owned()));
        }
        Ok(())
    }

    pub fn all_keys_for_auth(&self) -> Result<Vec<AuthKeyRow>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(AUTH_SELECT)?;
        let rows = st.query_map([], auth_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn auth_key(&self, id: &str) -> Result<Option<AuthKeyRow>, StoreError> {
        let conn = self.conn()?;
        let r = conn
            .query_row(&format!("{AUTH_SELECT} WHERE k.id = ?1"), [id], auth_row)
            .optional()?;
        Ok(r)
    }
}
