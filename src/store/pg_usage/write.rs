//! Writing usage events to PostgreSQL: one transaction per batch, the events inserted
//! with `ON CONFLICT (request_id) DO NOTHING ... RETURNING request_id`, and the per-day
//! rollups added up in Rust from exactly the rows that statement returned, so that a
//! batch delivered twice (a spool replayed after a crash, or by two instances) counts
//! once in the events and once in the rollups.
//!
//! Several instances write the same tables: every statement takes its row locks in one
//! fixed order (events by request id, rollup groups by key), since two transactions
//! upserting overlapping rows in different orders deadlock (LiteLLM #27989). Pruning
//! takes events back out of the rollups the same way, from the rows its `DELETE`
//! returned.

use std::collections::BTreeMap;

use tokio_postgres::{GenericClient, Row};

use crate::store::rollups::DAY_MS;
use crate::store::UsageRecord;

/// The columns of `usage_events` a batch fills, in the order of [`INSERT`]'s arrays.
const INSERT: &str = "INSERT INTO usage_events (request_id, ts, key_id, user_id, upstream, model_requested, \
     model_served, dialect, endpoint, streamed, status, input_tokens, output_tokens, cache_read_tokens, \
     cache_write_tokens, reasoning_tokens, estimated, cost_nanos, ttfb_ms, total_ms, attempts, upstream_kind) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::bool[], $11::bigint[], $12::bigint[], $13::bigint[], \
     $14::bigint[], $15::bigint[], $16::bigint[], $17::bool[], $18::bigint[], $19::bigint[], $20::bigint[], \
     $21::bigint[], $22::text[]) ON CONFLICT (request_id) DO NOTHING RETURNING request_id";

/// The columns [`RollupDelta::add`] reads from a deleted row (pruning).
pub(super) const ROLLUP_COLUMNS: &str =
    "request_id, ts, key_id, user_id, upstream, model_requested, \
     model_served, status, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
     reasoning_tokens, estimated, cost_nanos, ttfb_ms, total_ms";

/// One group's figures in the order of `usage_daily`'s columns from `requests` on.
type Sums = [i64; 9];

/// The largest value a rollup figure holds (SQLite's and PostgreSQL's largest bigint).
const MAX_SUM: &str = "9223372036854775807";

/// Upper bounds of the latency buckets in ms, ascending: the values SQLite's migration
/// 0009 puts in `latency_bounds` (about 12 per decade, 0, and a catch-all).
pub(super) fn latency_bounds() -> Vec<i64> {
    let mut bounds = vec![0, i64::MAX];
    let mut p = 1;
    while p <= 1_000_000 {
        for v in [10, 12, 15, 20, 25, 30, 40, 50, 60, 80] {
            bounds.push(v * p / 10);
        }
        p *= 10;
    }
    bounds.sort_unstable();
    bounds.dedup();
    bounds
}

/// Rollup changes summed in Rust, keyed in a fixed order (the `BTreeMap`s).
#[derive(Default)]
pub(super) struct RollupDelta {
    daily: BTreeMap<(i64, String, i64, String, String), Sums>,
    latency: BTreeMap<(i64, i64), (i64, i64)>,
    bounds: Vec<i64>,
}

impl RollupDelta {
    pub(super) fn new() -> Self {
        RollupDelta {
            bounds: latency_bounds(),
            ..RollupDelta::default()
        }
    }

    fn bucket(&self, ms: i64) -> i64 {
        let i = self.bounds.partition_point(|b| *b < ms);
        self.bounds.get(i).copied().unwrap_or(i64::MAX)
    }

    /// Adds one event (what the SQLite writer's `rollups::batch` adds for it).
    pub(super) fn add(&mut self, r: &UsageRecord) {
        let day = r.ts / DAY_MS;
        let group = (
            day,
            r.key_id.clone().unwrap_or_else(|| "-".into()),
            r.user_id.unwrap_or(0),
            r.upstream.clone().unwrap_or_else(|| "-".into()),
            r.model().to_owned(),
        );
        let add = [
            1,
            i64::from(r.status >= 400),
            r.input_tokens,
            r.output_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.reasoning_tokens,
            i64::from(r.estimated),
            r.cost_nanos,
        ];
        let sums = self.daily.entry(group).or_default();
        for (s, a) in sums.iter_mut().zip(add) {
            *s = s.saturating_add(a.max(0));
        }
        if (200..=299).contains(&r.status) {
            let total = self.bucket(r.total_ms.max(0));
            self.latency.entry((day, total)).or_default().0 += 1;
            if let Some(ttfb) = r.ttfb_ms {
                let ttfb = self.bucket(ttfb.max(0));
                self.latency.entry((day, ttfb)).or_default().1 += 1;
            }
        }
    }

    /// Applies the sums, added (`sign` 1) or taken out (-1), in key order.
    pub(super) async fn apply(
        &self,
        tx: &impl GenericClient,
        sign: i64,
    ) -> Result<(), tokio_postgres::Error> {
        if !self.daily.is_empty() {
            let mut cols: [Vec<i64>; 9] = Default::default();
            let (mut day, mut key, mut user, mut upstream, mut model) =
                (vec![], vec![], vec![], vec![], vec![]);
            for ((d, k, u, up, m), s) in &self.daily {
                day.push(*d);
                key.push(k.as_str());
                user.push(*u);
                upstream.push(up.as_str());
                model.push(m.as_str());
                for (c, v) in cols.iter_mut().zip(s) {
                    c.push(sign * v);
                }
            }
            let [a, b, c, d, e, f, g, h, i] = &cols;
            tx.execute(
                &*UPSERT_DAILY,
                &[
                    &day, &key, &user, &upstream, &model, a, b, c, d, e, f, g, h, i,
                ],
            )
            .await?;
        }
        if !self.latency.is_empty() {
            let (mut day, mut upper, mut total, mut ttfb) = (vec![], vec![], vec![], vec![]);
            for ((d, u), (t, f)) in &self.latency {
                day.push(*d);
                upper.push(*u);
                total.push(sign * t);
                ttfb.push(sign * f);
            }
            tx.execute(UPSERT_LATENCY, &[&day, &upper, &total, &ttfb])
                .await?;
        }
        Ok(())
    }
}

const DAILY_FIGURES: [&str; 9] = [
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated",
    "cost_nanos",
];

/// Every group of a batch in one statement, its rows in the arrays' (key) order; a
/// group already there gets each figure added, in `numeric` so that a sum past the
/// largest bigint saturates instead of failing the writer's transaction.
static UPSERT_DAILY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let set = DAILY_FIGURES
        .iter()
        .map(|c| {
            format!(
                "{c} = LEAST(GREATEST(usage_daily.{c}::numeric + excluded.{c}, 0), {MAX_SUM})::bigint"
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO usage_daily (day, key_id, user_id, upstream, model, {}) \
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], \
         $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], \
         $14::bigint[]) ON CONFLICT (day, key_id, user_id, upstream, model) DO UPDATE SET {set}",
        DAILY_FIGURES.join(", ")
    )
});

const UPSERT_LATENCY: &str = "INSERT INTO usage_latency_daily (day, upper_ms, total_n, ttfb_n) \
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) \
     ON CONFLICT (day, upper_ms) DO UPDATE SET total_n = usage_latency_daily.total_n + excluded.total_n, \
     ttfb_n = usage_latency_daily.ttfb_n + excluded.ttfb_n";

/// Inserts a batch and its rollups in the transaction `tx`; returns how many events
/// were new. Sorted by request id first: the lock order every instance shares.
pub(super) async fn insert(
    tx: &impl GenericClient,
    records: &[UsageRecord],
) -> Result<usize, tokio_postgres::Error> {
    // PostgreSQL's text holds no NUL, which a client may put in a model name: a row
    // with one would fail its batch, and the spool behind it, for good.
    let cleaned: Vec<UsageRecord>;
    let records = if records.iter().any(has_nul) {
        cleaned = records.iter().map(without_nul).collect();
        &cleaned[..]
    } else {
        records
    };
    let mut sorted: Vec<&UsageRecord> = records.iter().collect();
    sorted.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    // A batch may hold a request id twice (a spool row appended twice): the statement
    // must not, or the conflict check would see its own row.
    sorted.dedup_by(|a, b| a.request_id == b.request_id);
    let col = |f: fn(&UsageRecord) -> Option<&str>| sorted.iter().map(|r| f(r)).collect::<Vec<_>>();
    let int = |f: fn(&UsageRecord) -> i64| sorted.iter().map(|r| f(r)).collect::<Vec<_>>();
    let opt = |f: fn(&UsageRecord) -> Option<i64>| sorted.iter().map(|r| f(r)).collect::<Vec<_>>();
    let flag = |f: fn(&UsageRecord) -> bool| sorted.iter().map(|r| f(r)).collect::<Vec<_>>();
    let rows = tx
        .query(
            INSERT,
            &[
                &col(|r| Some(r.request_id.as_str())),
                &int(|r| r.ts),
                &col(|r| r.key_id.as_deref()),
                &opt(|r| r.user_id),
                &col(|r| r.upstream.as_deref()),
                &col(|r| r.model_requested.as_deref()),
                &col(|r| r.model_served.as_deref()),
                &col(|r| Some(r.dialect.as_str())),
                &col(|r| r.endpoint.as_deref()),
                &flag(|r| r.streamed),
                &int(|r| r.status),
                &int(|r| r.input_tokens),
                &int(|r| r.output_tokens),
                &int(|r| r.cache_read_tokens),
                &int(|r| r.cache_write_tokens),
                &int(|r| r.reasoning_tokens),
                &flag(|r| r.estimated),
                &int(|r| r.cost_nanos),
                &opt(|r| r.ttfb_ms),
                &int(|r| r.total_ms),
                &opt(|r| r.attempts),
                &col(|r| r.upstream_kind.as_deref()),
            ],
        )
        .await?;
    let inserted = rows
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
    let mut delta = RollupDelta::new();
    for r in sorted.iter().filter(|r| inserted.contains(&r.request_id)) {
        delta.add(r);
    }
    delta.apply(tx, 1).await?;
    Ok(inserted.len())
}

fn texts(r: &UsageRecord) -> impl Iterator<Item = &str> {
    [
        Some(r.request_id.as_str()),
        r.key_id.as_deref(),
        r.upstream.as_deref(),
        r.model_requested.as_deref(),
        r.model_served.as_deref(),
        Some(r.dialect.as_str()),
        r.endpoint.as_deref(),
        r.upstream_kind.as_deref(),
    ]
    .into_iter()
    .flatten()
}

fn has_nul(r: &UsageRecord) -> bool {
    texts(r).any(|t| t.contains('\0'))
}

fn without_nul(r: &UsageRecord) -> UsageRecord {
    let clean = |t: &str| t.replace('\0', "");
    let opt = |t: &Option<String>| t.as_deref().map(clean);
    UsageRecord {
        request_id: clean(&r.request_id),
        key_id: opt(&r.key_id),
        upstream: opt(&r.upstream),
        model_requested: opt(&r.model_requested),
        model_served: opt(&r.model_served),
        dialect: clean(&r.dialect),
        endpoint: opt(&r.endpoint),
        upstream_kind: opt(&r.upstream_kind),
        ..r.clone()
    }
}

/// A row of [`ROLLUP_COLUMNS`] as a record (the fields rollups read; the rest empty).
pub(super) fn rollup_record(r: &Row) -> Result<UsageRecord, tokio_postgres::Error> {
    Ok(UsageRecord {
        request_id: r.try_get(0)?,
        ts: r.try_get(1)?,
        key_id: r.try_get(2)?,
        user_id: r.try_get(3)?,
        upstream: r.try_get(4)?,
        model_requested: r.try_get(5)?,
        model_served: r.try_get(6)?,
        dialect: String::new(),
        endpoint: None,
        streamed: false,
        status: r.try_get(7)?,
        input_tokens: r.try_get(8)?,
        output_tokens: r.try_get(9)?,
        cache_read_tokens: r.try_get(10)?,
        cache_write_tokens: r.try_get(11)?,
        reasoning_tokens: r.try_get(12)?,
        estimated: r.try_get(13)?,
        cost_nanos: r.try_get(14)?,
        ttfb_ms: r.try_get(15)?,
        total_ms: r.try_get(16)?,
        attempts: None,
        upstream_kind: None,
    })
}
