//! Per-day rollups of usage events (migration 0009): what the dashboard's overview and
//! usage pages read instead of the events themselves.
//!
//! The writer keeps them in the transaction that inserts the events
//! ([`add_inserted`]): the rollups add up the rows that transaction inserted, found by
//! rowid (SQLite gives a new row a rowid above every existing one), so an event already
//! stored (a retried batch, `ON CONFLICT DO NOTHING`) is never counted twice and the
//! rollups always equal a scan of the events. Pruning takes the pruned events back out
//! ([`subtract_before`]). A batch costs the writer one aggregate over the rows it just
//! wrote (in the page cache) and an upsert per distinct (day, key, user, upstream,
//! model) and latency bucket in it: a few rows per batch, not per event.

use std::sync::LazyLock;

use rusqlite::{params, Connection, OptionalExtension};

use super::usage::UsageRow;
use super::{GroupBy, Store, StoreError};

/// Milliseconds per day: `ts / DAY_MS` is the rollup's day.
pub const DAY_MS: i64 = 86_400_000;

/// The events a rollup statement covers: inserted after a rowid, or older than a time.
const INSERTED_AFTER: &str = "rowid > ?1";
const OLDER_THAN: &str = "ts < ?1";

/// SQLite's largest integer: rollup sums saturate there.
const MAX_SUM: &str = "9223372036854775807";

/// The SQL of the sum of an integer column over a group of events, saturating at
/// [`MAX_SUM`] instead of failing: `SUM` fails the whole statement with "integer
/// overflow" past 2^63, which one absurd figure stored by an older version reaches, and
/// the writer's transaction (events with it) would fail for good. The high and low 32
/// bits are summed apart, as the usage report does (`super::usage::wide_sum`).
fn saturating_sum(col: &str) -> String {
    let (hi, lo) = (
        format!("SUM(MAX({col}, 0) >> 32)"),
        format!("SUM(MAX({col}, 0) & 4294967295)"),
    );
    // (hi << 32) + lo past 2^63 becomes a REAL in SQLite, which MIN brings back.
    format!(
        "MIN(CASE WHEN {hi} >= 2147483648 THEN {MAX_SUM} ELSE ({hi} << 32) + {lo} END, {MAX_SUM})"
    )
}

/// `col = col + excluded.col`, saturating ([`MAX_SUM`]) and never below 0.
fn saturating_add(col: &str) -> String {
    format!("{col} = MAX(MIN({col} + excluded.{col}, {MAX_SUM}), 0)")
}

/// `usage_daily`'s summed columns after `requests` and `errors`, in table order.
const SUMMED: [&str; 7] = [
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated",
    "cost_nanos",
];

/// `INSERT INTO usage_daily (...)`: the group, then `requests`, `errors` and [`SUMMED`].
const INSERT_DAILY: &str = "INSERT INTO usage_daily (day, key_id, user_id, upstream, model, requests, errors, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, estimated, cost_nanos)";

/// What a group already in `usage_daily` becomes: every figure added, saturating.
fn daily_conflict() -> String {
    let columns = ["requests", "errors"]
        .iter()
        .chain(SUMMED.iter())
        .map(|c| saturating_add(c))
        .collect::<Vec<_>>()
        .join(", ");
    format!("ON CONFLICT (day, key_id, user_id, upstream, model) DO UPDATE SET {columns}")
}

/// Adds (`sign` 1) or takes out (-1) the events matching `filter` to the daily totals.
fn daily_sql(filter: &str, sign: i8) -> String {
    let values = SUMMED
        .iter()
        .map(|c| format!("{sign} * {}", saturating_sum(c)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{INSERT_DAILY} \
         SELECT ts / {DAY_MS}, COALESCE(key_id, '-'), COALESCE(user_id, 0), COALESCE(upstream, '-'), \
         COALESCE(model_served, model_requested, '-'), {sign} * COUNT(*), {sign} * SUM(status >= 400), {values} \
         FROM usage_events WHERE {filter} GROUP BY 1, 2, 3, 4, 5 {}",
        daily_conflict()
    )
}

/// What a latency bucket already in `usage_latency_daily` becomes.
const LATENCY_CONFLICT: &str = "ON CONFLICT (day, upper_ms) DO UPDATE SET \
     total_n = total_n + excluded.total_n, ttfb_n = ttfb_n + excluded.ttfb_n";

/// The same for the latency histogram of 2xx answers (total duration, first byte).
fn latency_sql(filter: &str, sign: i8) -> String {
    let bucket =
        |col: &str| format!("(SELECT MIN(upper_ms) FROM latency_bounds WHERE upper_ms >= {col})");
    format!(
        "INSERT INTO usage_latency_daily (day, upper_ms, total_n, ttfb_n) \
         SELECT day, upper_ms, {sign} * SUM(t), {sign} * SUM(f) FROM ( \
           SELECT ts / {DAY_MS} AS day, {total} AS upper_ms, 1 AS t, 0 AS f \
           FROM usage_events WHERE {filter} AND status BETWEEN 200 AND 299 \
           UNION ALL \
           SELECT ts / {DAY_MS}, {ttfb}, 0, 1 \
           FROM usage_events WHERE {filter} AND status BETWEEN 200 AND 299 AND ttfb_ms IS NOT NULL \
         ) WHERE true GROUP BY day, upper_ms {LATENCY_CONFLICT}",
        total = bucket("total_ms"),
        ttfb = bucket("ttfb_ms"),
    )
}

/// One group's figures added to the daily totals (see [`batch`]).
static UPSERT_DAILY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{INSERT_DAILY} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) {}",
        daily_conflict()
    )
});

/// One latency bucket's counts added (see [`batch`]).
static UPSERT_LATENCY: LazyLock<String> = LazyLock::new(|| {
    format!("INSERT INTO usage_latency_daily (day, upper_ms, total_n, ttfb_n) VALUES (?1, ?2, ?3, ?4) {LATENCY_CONFLICT}")
});

static ADD_DAILY: LazyLock<String> = LazyLock::new(|| daily_sql(INSERTED_AFTER, 1));
static ADD_LATENCY: LazyLock<String> = LazyLock::new(|| latency_sql(INSERTED_AFTER, 1));
static SUB_DAILY: LazyLock<String> = LazyLock::new(|| daily_sql(OLDER_THAN, -1));
static SUB_LATENCY: LazyLock<String> = LazyLock::new(|| latency_sql(OLDER_THAN, -1));

/// The highest rowid of `usage_events` (0 when empty): call before inserting, then
/// [`add_inserted`] with it.
pub(super) fn last_rowid(tx: &Connection) -> rusqlite::Result<i64> {
    tx.prepare_cached("SELECT COALESCE(MAX(rowid), 0) FROM usage_events")?
        .query_row([], |r| r.get(0))
}

/// Adds a batch whose every event was inserted to the rollups.
pub(super) use batch::add_batch;

/// Adds the events inserted after rowid `after` to the rollups.
pub(super) fn add_inserted(tx: &Connection, after: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(&ADD_DAILY)?.execute([after])?;
    tx.prepare_cached(&ADD_LATENCY)?.execute([after])?;
    Ok(())
}

/// Takes the events older than `before_ms` (about to be deleted) out of the rollups.
pub(super) fn subtract_before(tx: &Connection, before_ms: i64) -> rusqlite::Result<()> {
    tx.execute(&SUB_DAILY, [before_ms])?;
    tx.execute(&SUB_LATENCY, [before_ms])?;
    tx.execute("DELETE FROM usage_daily WHERE requests <= 0", [])?;
    tx.execute(
        "DELETE FROM usage_latency_daily WHERE total_n <= 0 AND ttfb_n <= 0",
        [],
    )?;
    Ok(())
}

/// A key's cost (nano-dollars, saturating) today, this month and all time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpend {
    /// The key's id (`-` for events without a key).
    pub key_id: String,
    /// Its user's name (`-` when the user is gone).
    pub user: String,
    pub day: u64,
    pub month: u64,
    pub total: u64,
}

/// Days (since the epoch, UTC) from `from` to `to`, both included; `None`: unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DayRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl DayRange {
    pub fn days(from: i64, to: i64) -> Self {
        DayRange {
            from: Some(from),
            to: Some(to),
        }
    }

    pub fn all() -> Self {
        DayRange::default()
    }

    /// The first day, `i64::MIN` when unbounded (a range on `day` an index can serve,
    /// where `?1 IS NULL OR day >= ?1` scans every row).
    pub fn first(&self) -> i64 {
        self.from.unwrap_or(i64::MIN)
    }

    /// The last day, `i64::MAX` when unbounded.
    pub fn last(&self) -> i64 {
        self.to.unwrap_or(i64::MAX)
    }
}

/// A day's or a range's totals, with the errors the usage document does not carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Totals {
    pub usage: UsageRow,
    pub errors: u64,
}

/// Latency percentiles of 2xx answers, as bucket upper bounds in ms (`None`: no data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    pub total_p50: Option<i64>,
    pub total_p95: Option<i64>,
    pub ttfb_p50: Option<i64>,
    pub ttfb_p95: Option<i64>,
}

/// The overview's figures ([`Store::rollup_overview`]): today's and the month's
/// totals, the month's totals by model, user and key (ordered by group, as the reports
/// give them), and the cost per day of the series.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OverviewSums {
    pub today: Totals,
    pub month: Totals,
    pub models: Vec<Totals>,
    pub users: Vec<Totals>,
    pub keys: Vec<Totals>,
    /// (day, cost) for every day from the series' first to today.
    pub series: Vec<(i64, u64)>,
}

impl Store {
    /// Totals grouped by `by` over `days` (of one user's events when `user` is given),
    /// from the rollups: the figures `usage_report` gives for the same whole days.
    pub fn rollup_report(
        &self,
        by: GroupBy,
        days: DayRange,
        user: Option<i64>,
    ) -> Result<Vec<Totals>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::rollup_report(pg, by, days, user);
        }
        scan::report(&*self.conn()?, by, days, user)
    }

    /// Cost per key (with its user's name) over three spans in one pass over the
    /// rollups: from `day_from` and from `month_from` to `today` (days since the epoch),
    /// and all time; `user`'s keys only when given. What budgets are measured against:
    /// one scan instead of a report per span and grouping. Without `all_time` (no
    /// budget is over all time) only the days of the first two spans are read, every
    /// `total` is 0, and keys without cost in them are absent.
    pub fn rollup_spend(
        &self,
        day_from: i64,
        month_from: i64,
        today: i64,
        all_time: bool,
        user: Option<i64>,
    ) -> Result<Vec<KeySpend>, StoreError> {
        if let Some(pg) = self.pg() {
            let mut rows = super::pg_usage::rollup_spend(pg, day_from, month_from, today, user)?;
            if !all_time {
                rows.iter_mut().for_each(|r| r.total = 0);
            }
            return Ok(rows);
        }
        let spans = (day_from, month_from, today);
        scan::spend(&*self.conn()?, spans, all_time, user)
    }

    /// The requests over `days`: `rollup_totals`' count, reading that column only.
    pub fn rollup_requests(&self, days: DayRange) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return Ok(super::pg_usage::rollup_totals(pg, days, None)?
                .usage
                .requests);
        }
        scan::requests(&*self.conn()?, days)
    }

    /// All totals over `days` (of one user's events when `user` is given).
    pub fn rollup_totals(&self, days: DayRange, user: Option<i64>) -> Result<Totals, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::rollup_totals(pg, days, user);
        }
        scan::totals(&*self.conn()?, days, user)
    }

    /// The overview page's figures in one pass over the rollups from `month_from` or
    /// `series_from` (whichever is earlier) to `today`: what `rollup_totals` gives for
    /// today and for the month, `rollup_report` by model, user and key for the month,
    /// and the cost per day from `series_from` (days without usage 0).
    pub fn rollup_overview(
        &self,
        today: i64,
        month_from: i64,
        series_from: i64,
        user: Option<i64>,
    ) -> Result<OverviewSums, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::rollup_overview(pg, today, month_from, series_from, user);
        }
        scan::overview(&*self.conn()?, today, month_from, series_from, user)
    }

    /// p50 and p95 of total duration and time to first byte over `days`.
    pub fn latency(&self, days: DayRange) -> Result<Latency, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::latency(pg, days);
        }
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT upper_ms, SUM(total_n), SUM(ttfb_n) FROM usage_latency_daily d \
             WHERE d.day BETWEEN ?1 AND ?2 GROUP BY upper_ms ORDER BY upper_ms",
        )?;
        let buckets = st
            .query_map(params![days.first(), days.last()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let total: Vec<(i64, i64)> = buckets.iter().map(|b| (b.0, b.1)).collect();
        let ttfb: Vec<(i64, i64)> = buckets.iter().map(|b| (b.0, b.2)).collect();
        Ok(Latency {
            total_p50: percentile(&total, 50),
            total_p95: percentile(&total, 95),
            ttfb_p50: percentile(&ttfb, 50),
            ttfb_p95: percentile(&ttfb, 95),
        })
    }

    /// Models seen in routed traffic over `days` (served, else requested), sorted.
    pub fn models_seen(&self, days: DayRange) -> Result<Vec<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::models_seen(pg, days);
        }
        let conn = self.conn()?;
        let mut st = conn.prepare_cached(
            "SELECT DISTINCT d.model FROM usage_daily d \
             WHERE d.day BETWEEN ?1 AND ?2 AND d.upstream <> '-' AND d.model <> '-' \
             ORDER BY d.model",
        )?;
        let rows = st
            .query_map(params![days.first(), days.last()], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The first day with usage, if any (the start of "all time" on the pages).
    pub fn first_usage_day(&self) -> Result<Option<i64>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::first_usage_day(pg);
        }
        let conn = self.conn()?;
        let day = conn
            .query_row("SELECT MIN(day) FROM usage_daily", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .optional()?
            .flatten();
        Ok(day)
    }
}

/// The upper bound of the bucket holding the `pct`-th percentile of `(upper, count)`
/// buckets in ascending order; `None` when they count nothing.
pub(super) fn percentile(buckets: &[(i64, i64)], pct: i64) -> Option<i64> {
    let n: i64 = buckets.iter().map(|b| b.1.max(0)).sum();
    if n == 0 {
        return None;
    }
    // The smallest bucket at which at least pct% of the answers are counted.
    let rank = (n * pct + 99) / 100;
    let mut seen = 0;
    for (upper, count) in buckets {
        seen += count.max(&0);
        if seen >= rank {
            return Some(*upper);
        }
    }
    buckets.last().map(|b| b.0)
}

mod batch;
mod scan;
#[cfg(test)]
mod sql_reference;
#[cfg(test)]
mod tests;
