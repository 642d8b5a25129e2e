//! A batch's rollups added up in Rust from the events in hand: one upsert per distinct
//! (day, key, user, upstream, model) and per latency bucket instead of an aggregate
//! over the rows just written, which cost the writer about 25k instructions per event
//! (load-tests/RESULTS.md, 2026-12-04). Only when every event of the batch was inserted:
//! a batch that skipped a duplicate goes through [`super::add_inserted`], which reads
//! back exactly the rows stored. The figures are those the SQL aggregate gives: the same
//! defaults for missing fields, sums saturating at SQLite's largest integer, the same
//! latency buckets (read from `latency_bounds`).
//!
//! Consecutive events mostly share their group and day, so each is first compared with
//! the previous event's group, and hashed only when it differs: hashing every event's
//! group (three strings) was half of this module's cost.

use std::collections::HashMap;
use std::sync::OnceLock;

use rusqlite::{params, Connection};
use tollgate_filters::metering::UsageEvent;

use super::DAY_MS;
use crate::store::usage::stored;

/// One group's sums, in the order of `usage_daily`'s columns from `requests` on.
type Sums = [i64; 9];

/// A group of `usage_daily`: day, key, user, upstream, model.
type Group<'a> = (i64, &'a str, i64, &'a str, &'a str);

/// The groups of a batch in the order first seen, with their sums.
#[derive(Default)]
struct Daily<'a> {
    groups: Vec<(Group<'a>, Sums)>,
    index: HashMap<Group<'a>, usize>,
    /// The group of the previous event.
    last: usize,
}

impl<'a> Daily<'a> {
    fn add(&mut self, group: Group<'a>, add: Sums) {
        let i = match self.groups.get(self.last) {
            Some((g, _)) if *g == group => self.last,
            _ => {
                let next = self.groups.len();
                let i = *self.index.entry(group).or_insert(next);
                if i == next {
                    self.groups.push((group, Sums::default()));
                }
                i
            }
        };
        self.last = i;
        if let Some((_, sums)) = self.groups.get_mut(i) {
            for (s, a) in sums.iter_mut().zip(add) {
                *s = s.saturating_add(a);
            }
        }
    }
}

/// A day's 2xx answers per latency bucket: (total duration, first byte) counts, by the
/// bucket's position in the bounds (one more slot: past the last bound).
struct LatencyDay {
    day: i64,
    counts: Vec<(i64, i64)>,
}

/// Adds the batch to `usage_daily` and `usage_latency_daily`.
pub(in crate::store) fn add_batch(tx: &Connection, events: &[UsageEvent]) -> rusqlite::Result<()> {
    let bounds = latency_bounds(tx)?;
    let bucket = |ms: u64| bounds.partition_point(|b| *b < stored(ms));
    let mut daily = Daily::default();
    let mut latency: Vec<LatencyDay> = Vec::new();
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
        daily.add(
            group,
            [
                1,
                i64::from(e.status >= 400),
                stored(u.input),
                stored(u.output),
                stored(u.cache_read),
                stored(u.cache_write),
                stored(u.reasoning),
                i64::from(e.estimated),
                stored(e.cost_nanos),
            ],
        );
        if (200..=299).contains(&e.status) {
            // The latest day first: a batch spans one day, rarely two.
            let at = match latency.iter().rposition(|d| d.day == day) {
                Some(at) => at,
                None => {
                    latency.push(LatencyDay {
                        day,
                        counts: vec![(0, 0); bounds.len() + 1],
                    });
                    latency.len() - 1
                }
            };
            let counts = &mut latency[at].counts;
            counts[bucket(e.total_ms)].0 += 1;
            if let Some(ttfb) = e.ttfb_ms {
                counts[bucket(ttfb)].1 += 1;
            }
        }
    }
    let mut up = tx.prepare_cached(&super::UPSERT_DAILY)?;
    for ((day, key, user, upstream, model), s) in &daily.groups {
        up.execute(params![
            day, key, user, upstream, model, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8]
        ])?;
    }
    let mut up = tx.prepare_cached(&super::UPSERT_LATENCY)?;
    for d in &latency {
        for (i, (total, ttfb)) in d.counts.iter().enumerate() {
            if (*total, *ttfb) != (0, 0) {
                let upper = bounds.get(i).copied().unwrap_or(i64::MAX);
                up.execute(params![d.day, upper, total, ttfb])?;
            }
        }
    }
    Ok(())
}

/// The latency buckets' upper bounds, ascending: read once per process, since only
/// migration 0009 writes the table, with the same rows in every store.
fn latency_bounds(tx: &Connection) -> rusqlite::Result<&'static [i64]> {
    static BOUNDS: OnceLock<Vec<i64>> = OnceLock::new();
    if let Some(b) = BOUNDS.get() {
        return Ok(b);
    }
    let read = tx
        .prepare("SELECT upper_ms FROM latency_bounds ORDER BY upper_ms")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(BOUNDS.get_or_init(|| read))
}
