//! `data_keys` on PostgreSQL: the keyring's wrapped data keys. The keyring unwraps
//! (or re-wraps) the rows with the master key *inside* the transaction that read them,
//! on the caller's thread, so the transaction is held open across two trips to the
//! store's runtime ([`HeldTx`]); the table is locked meanwhile, so two instances
//! initializing one store serialize, and a wrong master key never leaves keys wrapped
//! under it behind.

use deadpool_postgres::Object;

use super::{client, PgStore};
use crate::store::{DataKeyRow, StoreError};

const SELECT: &str = "SELECT purpose, nonce, wrapped, created_at, rotated_at FROM data_keys ORDER BY purpose COLLATE \"C\"";

/// A transaction left open on a pooled connection between calls. Ended by
/// [`HeldTx::finish`]; dropped unfinished (an error, a panic), the connection leaves
/// the pool and closes, which makes the server roll the transaction back.
struct HeldTx(Option<Object>);

impl Drop for HeldTx {
    fn drop(&mut self) {
        if let Some(obj) = self.0.take() {
            drop(Object::take(obj));
        }
    }
}

impl PgStore {
    /// Begins a transaction with `data_keys` locked, runs `sql` with `params` for each
    /// row of `writes`, and reads every row.
    fn begin_data_keys(
        &self,
        writes: Vec<DataKeyRow>,
        sql: &'static str,
    ) -> Result<(HeldTx, Vec<DataKeyRow>), StoreError> {
        self.run(move |pool| async move {
            let mut held = HeldTx(Some(client(&pool).await?));
            let Some(c) = held.0.as_mut() else {
                unreachable!("just set")
            };
            c.batch_execute("BEGIN; LOCK TABLE data_keys IN EXCLUSIVE MODE")
                .await?;
            for w in &writes {
                c.execute(
                    sql,
                    &[
                        &w.purpose,
                        &w.nonce,
                        &w.wrapped,
                        &w.created_at,
                        &w.rotated_at,
                    ],
                )
                .await?;
            }
            let rows = read_all(c).await?;
            Ok((held, rows))
        })
    }

    /// Commits (or, `commit` false, rolls back) a held transaction.
    fn finish(&self, mut held: HeldTx, commit: bool) -> Result<(), StoreError> {
        let Some(obj) = held.0.take() else {
            return Ok(());
        };
        self.run(move |_| async move {
            let mut held = HeldTx(Some(obj));
            if let Some(c) = held.0.as_ref() {
                c.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
                    .await?;
            }
            // Ended: the connection goes back to the pool.
            drop(held.0.take());
            Ok(())
        })
    }

    pub(crate) fn init_data_keys<T, E: From<StoreError>>(
        &self,
        candidates: &[DataKeyRow],
        open: impl FnOnce(&[DataKeyRow]) -> Result<T, E>,
    ) -> Result<T, E> {
        let (held, rows) = self.begin_data_keys(
            candidates.to_vec(),
            "INSERT INTO data_keys (purpose, nonce, wrapped, created_at, rotated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (purpose) DO NOTHING",
        )?;
        match open(&rows) {
            Ok(out) => {
                self.finish(held, true)?;
                Ok(out)
            }
            Err(e) => {
                let _ = self.finish(held, false);
                Err(e)
            }
        }
    }

    pub(crate) fn rewrap_data_keys<E: From<StoreError>>(
        &self,
        now: i64,
        rewrap: impl FnOnce(Vec<DataKeyRow>) -> Result<Vec<DataKeyRow>, E>,
    ) -> Result<usize, E> {
        let (mut held, rows) = self.begin_data_keys(Vec::new(), "")?;
        let rows = match rewrap(rows) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.finish(held, false);
                return Err(e);
            }
        };
        let n = rows.len();
        let Some(obj) = held.0.take() else {
            unreachable!("begin_data_keys holds a connection")
        };
        self.run(move |_| async move {
            let mut held = HeldTx(Some(obj));
            let Some(c) = held.0.as_mut() else {
                unreachable!("just set")
            };
            for r in &rows {
                c.execute(
                    "UPDATE data_keys SET nonce = $2, wrapped = $3, rotated_at = $4 WHERE purpose = $1",
                    &[&r.purpose, &r.nonce, &r.wrapped, &now],
                )
                .await?;
            }
            c.batch_execute("COMMIT").await?;
            // Committed: the connection goes back to the pool.
            drop(held.0.take());
            Ok(())
        })?;
        Ok(n)
    }

    pub(crate) fn data_keys(&self) -> Result<Vec<DataKeyRow>, StoreError> {
        self.run(|pool| async move { read_all(&client(&pool).await?).await })
    }
}

async fn read_all(c: &Object) -> Result<Vec<DataKeyRow>, StoreError> {
    let rows = c.query(SELECT, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(DataKeyRow {
                purpose: r.try_get(0)?,
                nonce: r.try_get(1)?,
                wrapped: r.try_get(2)?,
                created_at: r.try_get(3)?,
                rotated_at: r.try_get(4)?,
            })
        })
        .collect()
}
