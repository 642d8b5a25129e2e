//! Queries on `audit_log`: one row per admin action (who, what, on what, from where,
//! when). Callers put no secret in any field; this module stores what it is given.

use rusqlite::params;

use super::{Store, StoreError};

/// One audit entry, as written and as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    /// Assigned by the store (0 in an entry being written).
    pub id: i64,
    /// Unix seconds.
    pub ts: i64,
    /// The acting user's name, or `-` when nobody authenticated (a failed login).
    pub actor: String,
    /// `user.create`, `key.revoke`, `login.failed`...
    pub action: String,
    pub target: Option<String>,
    /// The client's IP address.
    pub source: Option<String>,
    pub detail: serde_json::Value,
}

impl Store {
    pub fn append_audit(&self, e: &AuditRow) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.append_audit(e);
        }
        self.conn()?.execute(
            "INSERT INTO audit_log (ts, actor, action, target, source, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.ts, e.actor, e.action, e.target, e.source, e.detail.to_string()],
        )?;
        Ok(())
    }

    /// The newest `limit` entries, newest first (by insertion order, which also orders
    /// entries written in the same second).
    pub fn list_audit(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_audit(limit);
        }
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, ts, actor, action, target, source, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit], |r| {
                let detail: Option<String> = r.get(6)?;
                Ok(AuditRow {
                    id: r.get(0)?,
                    ts: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    source: r.get(5)?,
                    // Written by append_audit as JSON; anything else is shown as text
                    // rather than failing the whole listing.
                    detail: detail.map_or(serde_json::Value::Null, |d| {
                        serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))
                    }),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{on_both_backends, TestBackend};

    on_both_backends!(newest_first_with_a_limit,);

    fn newest_first_with_a_limit(b: &TestBackend) {
        let s = &b.store;
        for (i, action) in ["login", "key.create", "logout"].iter().enumerate() {
            s.append_audit(&AuditRow {
                id: 0,
                ts: 100,
                actor: "root".into(),
                action: (*action).into(),
                target: Some(format!("t{i}")),
                source: Some("127.0.0.1".into()),
                detail: serde_json::json!({"n": i}),
            })
            .unwrap();
        }
        let rows = s.list_audit(2).unwrap();
        let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["logout", "key.create"]);
        assert_eq!(rows[0].detail, serde_json::json!({"n": 2}));
        assert_eq!(rows[0].source.as_deref(), Some("127.0.0.1"));
        assert_eq!(s.list_audit(10).unwrap().len(), 3);
    }
}
