//! Queries on `data_keys`: the wrapped data keys of the keyring (see
//! [`crate::keys::keyring`]). The store only moves opaque wrapped bytes; wrapping and
//! unwrapping happen in the keyring, inside the transactions opened here.

use rusqlite::{params, TransactionBehavior};

use super::{Store, StoreError};

/// One wrapped data key as stored. The wrapped bytes are AES-GCM ciphertext, not a
/// secret by themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRow {
    pub purpose: String,
    pub nonce: Vec<u8>,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
}

fn read_all(conn: &rusqlite::Connection) -> Result<Vec<DataKeyRow>, StoreError> {
    let mut st = conn.prepare(
        "SELECT purpose, nonce, wrapped, created_at, rotated_at FROM data_keys ORDER BY purpose",
    )?;
    let rows = st
        .query_map([], |r| {
            Ok(DataKeyRow {
                purpose: r.get(0)?,
                nonce: r.get(1)?,
                wrapped: r.get(2)?,
                created_at: r.get(3)?,
                rotated_at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

impl Store {
    /// Inserts each candidate whose purpose has no row yet (`INSERT OR IGNORE`, so a
    /// process racing us keeps its keys and we adopt them), then hands every row to
    /// `open`; commits only when `open` succeeds. The transaction is IMMEDIATE: the
    /// write lock is taken first, so two processes initializing one store serialize.
    /// A wrong master key therefore never leaves keys wrapped under it behind.
    pub fn init_data_keys<T, E: From<StoreError>>(
        &self,
        candidates: &[DataKeyRow],
        open: impl FnOnce(&[DataKeyRow]) -> Result<T, E>,
    ) -> Result<T, E> {
        if let Some(pg) = self.pg() {
            return pg.init_data_keys(candidates, open);
        }
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        for c in candidates {
            tx.execute(
                "INSERT OR IGNORE INTO data_keys (purpose, nonce, wrapped, created_at, rotated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![c.purpose, c.nonce, c.wrapped, c.created_at, c.rotated_at],
            )
            .map_err(StoreError::from)?;
        }
        let rows = read_all(&tx)?;
        let out = open(&rows)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Replaces every data key's wrapping with what `rewrap` returns for it, in one
    /// transaction: either all keys move to the new master key or none does. Rows
    /// `rewrap` returns get `rotated_at = now`.
    pub fn rewrap_data_keys<E: From<StoreError>>(
        &self,
        now: i64,
        rewrap: impl FnOnce(Vec<DataKeyRow>) -> Result<Vec<DataKeyRow>, E>,
    ) -> Result<usize, E> {
        if let Some(pg) = self.pg() {
            return pg.rewrap_data_keys(now, rewrap);
        }
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let rows = rewrap(read_all(&tx)?)?;
        for r in &rows {
            tx.execute(
                "UPDATE data_keys SET nonce = ?2, wrapped = ?3, rotated_at = ?4 WHERE purpose = ?1",
                params![r.purpose, r.nonce, r.wrapped, now],
            )
            .map_err(StoreError::from)?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(rows.len())
    }

    /// Every wrapped data key, read only (for `tollgate check`).
    pub fn data_keys(&self) -> Result<Vec<DataKeyRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.data_keys();
        }
        read_all(&*self.conn()?)
    }

    /// Whether any gateway key exists. Stores from before the keyring hashed gateway
    /// keys under a sub-key of the master key; the keyring adopts that key there so the
    /// keys already handed out keep working.
    pub fn has_gateway_keys(&self) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.has_gateway_keys();
        }
        let conn = self.conn()?;
        Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM api_keys)", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{on_both_backends, TestBackend};

    on_both_backends!(
        init_keeps_existing_rows_and_rolls_back_on_refusal,
        rewrap_is_all_or_nothing,
    );

    fn row(purpose: &str, byte: u8) -> DataKeyRow {
        DataKeyRow {
            purpose: purpose.into(),
            nonce: vec![byte; 12],
            wrapped: vec![byte; 48],
            created_at: 5,
            rotated_at: None,
        }
    }

    fn init_keeps_existing_rows_and_rolls_back_on_refusal(b: &TestBackend) {
        let s = &b.store;
        let got = s
            .init_data_keys(&[row("a", 1)], |rows| Ok::<_, StoreError>(rows.to_vec()))
            .unwrap();
        assert_eq!(got, vec![row("a", 1)]);
        // A second initializer loses the race for "a" and adopts the first one's row.
        let got = s
            .init_data_keys(&[row("a", 2), row("b", 2)], |rows| {
                Ok::<_, StoreError>(rows.to_vec())
            })
            .unwrap();
        assert_eq!(got, vec![row("a", 1), row("b", 2)]);
        // A refusal leaves nothing behind.
        let refused = s.init_data_keys(&[row("c", 3)], |_| {
            Err::<(), _>(StoreError::Corrupt("no".into()))
        });
        assert!(refused.is_err());
        let all = s
            .init_data_keys(&[], |rows| Ok::<_, StoreError>(rows.to_vec()))
            .unwrap();
        assert_eq!(all.len(), 2);
    }

    fn rewrap_is_all_or_nothing(b: &TestBackend) {
        let s = &b.store;
        s.init_data_keys(&[row("a", 1), row("b", 1)], |_| Ok::<_, StoreError>(()))
            .unwrap();
        let n = s
            .rewrap_data_keys(9, |rows| {
                Ok::<_, StoreError>(
                    rows.into_iter()
                        .map(|r| DataKeyRow {
                            wrapped: vec![7; 48],
                            ..r
                        })
                        .collect(),
                )
            })
            .unwrap();
        assert_eq!(n, 2);
        let failed = s.rewrap_data_keys(10, |_| Err::<Vec<DataKeyRow>, _>(StoreError::Poisoned));
        assert!(failed.is_err());
        let all = s
            .init_data_keys(&[], |rows| Ok::<_, StoreError>(rows.to_vec()))
            .unwrap();
        assert!(all
            .iter()
            .all(|r| r.wrapped == vec![7; 48] && r.rotated_at == Some(9)));
        assert!(!s.has_gateway_keys().unwrap());
    }
}
