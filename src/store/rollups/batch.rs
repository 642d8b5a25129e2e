//! A batch's rollups added up in Rust from the events in hand: one upsert per distinct
//! (day, key, user, upstream, model) and per latency bucket instead of an aggregate
//! over the rows just written, which cost the writer about 25k instructions per event
//! (load-tests/RESULTS.md, 2026-12-04). Only when every event of the batch was inserted:
//! a batch that skipped a duplicate goes through [`super::add_inserted`], which reads
//! back exactly the rows stored. The figures are those the SQL aggregate gives: the same
//! defaults for missing fields, sums saturating at SQLite's largest integer, the same
//! latency buckets (read from `latency_bounds`).

use std::collections::HashMap;

use rusqlite::{params, Connection};
use tollgate_filters::metering::UsageEvent;

use super::DAY_MS;
use crate::store::usage::stored;

/// One group's sums, in the order of `usage_daily`'s columns from `requests` on.
type Sums = [i64; 9];

/// Adds the batch to `usage_daily` and `usage_latency_daily`.
pub(in crate::store) fn add_batch(tx: &Connection, events: &[UsageEvent]) -> rusqlite::Result<()> {
    let mut daily: HashMap<(i64, &str, i64, &str, &str), Sums> = HashMap::new();
    let mut latency: HashMap<(i64, i64), (i64, i64)> = HashMap::new();
    let bounds = latency_bounds(tx)?;
    let bucket = |ms: i64| {
        let i = bounds.partition_point(|b| *b < ms);
        bounds.get(i).copied().unwrap_or(i64::MAX)
    };
    for e in events {
        let day = e.ts_ms / DAY_MS;
        let model = e
            .model_served
            .as_deref()
            .or(e.model_requested.as_deref())
            .unwrap_or("-");
        let group = (
            day,
            e.key_id.as_deref().unwrap_or("-"),
            e.user_id.unwrap_or(0),
            e.upstream.as_deref().unwrap_or("-"),
            model,
        );
        let u = &e.usage;
        let add = [
            1,
            i64::from(e.status >= 400),
            stored(u.input),
            stored(u.output),
            stored(u.cache_read),
            stored(u.cache_write),
            stored(u.reasoning),
            i64::from(e.estimated),
            stored(e.cost_nanos),
        ];
        let sums = daily.entry(group).or_default();
        for (s, a) in sums.iter_mut().zip(add) {
            *s = s.saturating_add(a);
        }
        if (200..=299).contains(&e.status) {
            let total = latency
                .entry((day, bucket(stored(e.total_ms))))
                .or_default();
            total.0 += 1;
            if let Some(ttfb) = e.ttfb_ms {
                latency.entry((day, bucket(stored(ttfb)))).or_default().1 += 1;
            }
        }
    }
    let mut up = tx.prepare_cached(&super::UPSERT_DAILY)?;
    for ((day, key, user, upstream, model), s) in &daily {
        up.execute(params![
            day, key, user, upstream, model, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]
        ])?;
    }
    let mut up = tx.prepare_cached(&super::UPSERT_LATENCY)?;
    for ((day, upper), (total, ttfb)) in &latency {
        up.execute(params![day, upper, total, ttfb])?;
    }
    Ok(())
}

/// The latency buckets' upper bounds, ascending (the migration fills the table).
fn latency_bounds(tx: &Connection) -> rusqlite::Result<Vec<i64>> {
    tx.prepare_cached("SELECT upper_ms FROM latency_bounds ORDER BY upper_ms")?
        .query_map([], |r| r.get(0))?
        .collect()
}
