//! Retention on PostgreSQL: events older than a time deleted in transactions of about
//! [`PRUNE_BATCH`] (oldest first, cut at a timestamp), each taking exactly the rows its
//! `DELETE` returned back out of the rollups, in key order (`super::write`).

use tokio_postgres::GenericClient;

use super::write::{rollup_record, RollupDelta, ROLLUP_COLUMNS};

/// Events deleted per transaction.
pub(super) const PRUNE_BATCH: i64 = 2_000;

/// One pruning transaction's work in `tx`: deletes a batch of events older than
/// `before_ms`; returns how many, and whether it reached `before_ms` (nothing older is
/// left).
pub(super) async fn prune_batch(
    tx: &impl GenericClient,
    before_ms: i64,
) -> Result<(usize, bool), tokio_postgres::Error> {
    let newest: Option<i64> = tx
        .query_opt(
            "SELECT ts FROM usage_events WHERE ts < $1 ORDER BY ts LIMIT 1 OFFSET $2",
            &[&before_ms, &(PRUNE_BATCH - 1)],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    let cut = newest.map_or(before_ms, |ts| (ts + 1).min(before_ms));
    let rows = tx
        .query(
            &format!("DELETE FROM usage_events WHERE ts < $1 RETURNING {ROLLUP_COLUMNS}"),
            &[&cut],
        )
        .await?;
    let mut delta = RollupDelta::new();
    for r in &rows {
        delta.add(&rollup_record(r)?);
    }
    delta.apply(tx, -1).await?;
    tx.execute("DELETE FROM usage_daily WHERE requests <= 0", &[])
        .await?;
    tx.execute(
        "DELETE FROM usage_latency_daily WHERE total_n <= 0 AND ttfb_n <= 0",
        &[],
    )
    .await?;
    Ok((rows.len(), cut == before_ms))
}
