//! `audit_log` on PostgreSQL: the queries of `store/audit.rs`.

use super::{client, PgStore};
use crate::store::{AuditRow, StoreError};

impl PgStore {
    pub(crate) fn append_audit(&self, e: &AuditRow) -> Result<(), StoreError> {
        let e = e.clone();
        self.run(move |pool| async move {
            client(&pool)
                .await?
                .execute(
                    "INSERT INTO audit_log (ts, actor, action, target, source, detail) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&e.ts, &e.actor, &e.action, &e.target, &e.source, &e.detail.to_string()],
                )
                .await?;
            Ok(())
        })
    }

    pub(crate) fn list_audit(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        self.run(move |pool| async move {
            let rows = client(&pool)
                .await?
                .query(
                    "SELECT id, ts, actor, action, target, source, detail FROM audit_log ORDER BY id DESC LIMIT $1",
                    &[&i64::from(limit)],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let detail: Option<String> = r.try_get(6)?;
                    Ok(AuditRow {
                        id: r.try_get(0)?,
                        ts: r.try_get(1)?,
                        actor: r.try_get(2)?,
                        action: r.try_get(3)?,
                        target: r.try_get(4)?,
                        source: r.try_get(5)?,
                        // As the SQLite store: JSON as written, anything else as text.
                        detail: detail.map_or(serde_json::Value::Null, |d| {
                            serde_json::from_str(&d).unwrap_or(serde_json::Value::String(d))
                        }),
                    })
                })
                .collect()
        })
    }
}
