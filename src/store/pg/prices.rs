//! `price_overrides` on PostgreSQL: the queries of `store/prices.rs`. Setting and
//! deleting a price announce `prices` in their own transaction.

use tollgate_filters::usage::Price;

use super::{client, notify, PgStore};
use crate::store::StoreError;

/// A price as stored (prices are far below i64's range).
fn sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn nanos(r: &tokio_postgres::Row, idx: usize) -> Result<u64, StoreError> {
    let v: i64 = r.try_get(idx)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt("a negative price override".into()))
}

impl PgStore {
    /// Upserts the override of `pattern`; whether one was replaced.
    pub(crate) fn set_price(
        &self,
        pattern: &str,
        price: Price,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (pattern, origin) = (pattern.to_owned(), self.origin().to_owned());
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            // xmax is 0 for a row this statement inserted, not for one it updated.
            let replaced: bool = tx
                .query_one(
                    "INSERT INTO price_overrides (pattern, input_nanos, output_nanos, cache_read_nanos, cache_write_nanos, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pattern) DO UPDATE SET input_nanos = $2, output_nanos = $3, \
                     cache_read_nanos = $4, cache_write_nanos = $5, updated_at = $6 RETURNING xmax <> 0",
                    &[
                        &pattern,
                        &sql(price.input),
                        &sql(price.output),
                        &sql(price.cache_read),
                        &sql(price.cache_write),
                        &now,
                    ],
                )
                .await?
                .try_get(0)?;
            notify(&tx, &origin, &["prices"]).await?;
            tx.commit().await?;
            Ok(replaced)
        })
    }

    pub(crate) fn delete_price(&self, pattern: &str) -> Result<bool, StoreError> {
        let (pattern, origin) = (pattern.to_owned(), self.origin().to_owned());
        self.run(move |pool| async move {
            let mut c = client(&pool).await?;
            let tx = c.transaction().await?;
            let n = tx
                .execute(
                    "DELETE FROM price_overrides WHERE pattern = $1",
                    &[&pattern],
                )
                .await?;
            if n > 0 {
                notify(&tx, &origin, &["prices"]).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    pub(crate) fn price_overrides(&self) -> Result<Vec<(String, Price)>, StoreError> {
        self.run(|pool| async move {
            let rows = client(&pool)
                .await?
                .query(
                    "SELECT pattern, input_nanos, output_nanos, cache_read_nanos, cache_write_nanos \
                     FROM price_overrides ORDER BY pattern COLLATE \"C\"",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    let price = Price {
                        input: nanos(r, 1)?,
                        output: nanos(r, 2)?,
                        cache_read: nanos(r, 3)?,
                        cache_write: nanos(r, 4)?,
                    };
                    Ok((r.try_get(0)?, price))
                })
                .collect()
        })
    }
}
