//! Reading usage from PostgreSQL: the grouped reports (`tollgate usage`, `GET
//! /admin/usage`), the dashboard's rollup reports, budget spans and latency, budget
//! seeding. The same figures as the SQLite queries
//! (`store::usage`, `store::rollups`, `store::keys::spend_since`): groups sorted
//! bytewise (`COLLATE "C"`, as SQLite compares text), sums that saturate at `u64::MAX`
//! instead of failing, days in UTC.

use std::sync::LazyLock;

use tokio_postgres::{GenericClient, Row};

use crate::store::{DayRange, GroupBy, KeySpend, Latency, Totals, UsageRow};

type PgResult<T> = Result<T, tokio_postgres::Error>;

/// An overflow-free sum of an integer expression as two bigint columns (high and low
/// 32 bits, negatives as 0) for [`wide`]: the same split as SQLite's `wide_sum`, so the
/// figures saturate identically.
fn wide_sum(expr: &str) -> String {
    format!(
        "COALESCE(SUM(GREATEST({expr}, 0) >> 32), 0)::bigint, \
         COALESCE(SUM(GREATEST({expr}, 0) & 4294967295), 0)::bigint"
    )
}

/// The sum whose halves ([`wide_sum`]) are the columns `at` and `at + 1`.
fn wide(r: &Row, at: usize) -> PgResult<u64> {
    let half = |i: usize| r.try_get::<_, i64>(i).map(|v| v.max(0) as u128);
    let total = (half(at)? << 32) + half(at + 1)?;
    Ok(u64::try_from(total).unwrap_or(u64::MAX))
}

/// A UTC day (`YYYY-MM-DD`) from unix seconds.
fn utc_day(seconds: &str) -> String {
    format!("to_char(to_timestamp({seconds}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')")
}

fn event_group(by: GroupBy) -> String {
    match by {
        GroupBy::Key => "COALESCE(e.key_id, '-')".into(),
        GroupBy::User => "COALESCE(u.username, '-')".into(),
        GroupBy::Model => "COALESCE(e.model_served, e.model_requested, '-')".into(),
        GroupBy::Upstream => "COALESCE(e.upstream, '-')".into(),
        GroupBy::Day => utc_day("e.ts / 1000"),
    }
}

fn rollup_group(by: GroupBy) -> String {
    match by {
        GroupBy::Key => "d.key_id".into(),
        GroupBy::User => "COALESCE(u.username, '-')".into(),
        GroupBy::Model => "d.model".into(),
        GroupBy::Upstream => "d.upstream".into(),
        GroupBy::Day => utc_day("d.day * 86400"),
    }
}

/// Totals grouped by `by` for events with `since_ms <= ts < until_ms`.
pub(super) async fn usage_report(
    c: &impl GenericClient,
    by: GroupBy,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
) -> PgResult<Vec<UsageRow>> {
    let sums = [
        "e.input_tokens",
        "e.output_tokens",
        "e.cache_read_tokens",
        "e.cache_write_tokens",
        "e.reasoning_tokens",
        "e.estimated::int::bigint",
        "e.cost_nanos",
    ]
    .map(wide_sum)
    .join(", ");
    let sql = format!(
        "SELECT {g} COLLATE \"C\" AS grp, COUNT(*), {sums} \
         FROM usage_events e LEFT JOIN users u ON u.id = e.user_id \
         WHERE ($1::bigint IS NULL OR e.ts >= $1) AND ($2::bigint IS NULL OR e.ts < $2) \
         GROUP BY grp ORDER BY grp",
        g = event_group(by)
    );
    let rows = c.query(&sql, &[&since_ms, &until_ms]).await?;
    rows.iter()
        .map(|r| {
            let sum = |k: usize| wide(r, 2 + 2 * k);
            Ok(UsageRow {
                group: r.try_get(0)?,
                requests: r.try_get::<_, i64>(1)?.max(0) as u64,
                input_tokens: sum(0)?,
                output_tokens: sum(1)?,
                cache_read_tokens: sum(2)?,
                cache_write_tokens: sum(3)?,
                reasoning_tokens: sum(4)?,
                estimated_requests: sum(5)?,
                cost_nanos: sum(6)?,
            })
        })
        .collect()
}

/// The nine sums a [`Totals`] reads, over `usage_daily d`.
static SUMS: LazyLock<String> = LazyLock::new(|| {
    [
        "d.requests",
        "d.input_tokens",
        "d.output_tokens",
        "d.cache_read_tokens",
        "d.cache_write_tokens",
        "d.reasoning_tokens",
        "d.estimated",
        "d.cost_nanos",
        "d.errors",
    ]
    .map(wide_sum)
    .join(", ")
});

fn totals_at(r: &Row, at: usize, group: String) -> PgResult<Totals> {
    let n = |i: usize| wide(r, at + 2 * i);
    Ok(Totals {
        usage: UsageRow {
            group,
            requests: n(0)?,
            input_tokens: n(1)?,
            output_tokens: n(2)?,
            cache_read_tokens: n(3)?,
            cache_write_tokens: n(4)?,
            reasoning_tokens: n(5)?,
            estimated_requests: n(6)?,
            cost_nanos: n(7)?,
        },
        errors: n(8)?,
    })
}

/// A day range and an optional user, parameters $1 $2 $3.
const RANGE: &str = "($1::bigint IS NULL OR d.day >= $1) AND ($2::bigint IS NULL OR d.day <= $2) \
     AND ($3::bigint IS NULL OR d.user_id = $3)";

pub(super) async fn rollup_report(
    c: &impl GenericClient,
    by: GroupBy,
    days: DayRange,
    user: Option<i64>,
) -> PgResult<Vec<Totals>> {
    let sql = format!(
        "SELECT {g} COLLATE \"C\" AS grp, {sums} FROM usage_daily d LEFT JOIN users u ON u.id = d.user_id \
         WHERE {RANGE} GROUP BY grp ORDER BY grp",
        g = rollup_group(by),
        sums = *SUMS
    );
    let rows = c.query(&sql, &[&days.from, &days.to, &user]).await?;
    rows.iter()
        .map(|r| totals_at(r, 1, r.try_get(0)?))
        .collect()
}

pub(super) async fn rollup_spend(
    c: &impl GenericClient,
    day_from: i64,
    month_from: i64,
    today: i64,
    user: Option<i64>,
) -> PgResult<Vec<KeySpend>> {
    let span = |from: &str| {
        wide_sum(&format!(
            "CASE WHEN d.day BETWEEN {from} AND $3 THEN d.cost_nanos ELSE 0 END"
        ))
    };
    let sql = format!(
        "SELECT d.key_id, COALESCE(MAX(u.username), '-'), {}, {}, {} \
         FROM usage_daily d LEFT JOIN users u ON u.id = d.user_id \
         WHERE ($4::bigint IS NULL OR d.user_id = $4) GROUP BY d.key_id, d.user_id",
        span("$1::bigint"),
        span("$2::bigint"),
        wide_sum("d.cost_nanos")
    );
    let rows = c
        .query(&sql, &[&day_from, &month_from, &today, &user])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KeySpend {
                key_id: r.try_get(0)?,
                user: r.try_get(1)?,
                day: wide(r, 2)?,
                month: wide(r, 4)?,
                total: wide(r, 6)?,
            })
        })
        .collect()
}

pub(super) async fn rollup_totals(
    c: &impl GenericClient,
    days: DayRange,
    user: Option<i64>,
) -> PgResult<Totals> {
    let sql = format!("SELECT {} FROM usage_daily d WHERE {RANGE}", *SUMS);
    let r = c.query_one(&sql, &[&days.from, &days.to, &user]).await?;
    totals_at(&r, 0, String::new())
}

/// Cost per day from `from` to `to`, every day present (0 without usage), negative
/// costs counted as 0 and the sum capped, as the SQLite scan does.
pub(super) async fn daily_cost(
    c: &impl GenericClient,
    from: i64,
    to: i64,
    user: Option<i64>,
) -> PgResult<Vec<(i64, u64)>> {
    let rows = c
        .query(
            "SELECT d.day, LEAST(SUM(GREATEST(d.cost_nanos, 0)), 9223372036854775807)::bigint \
             FROM usage_daily d WHERE d.day BETWEEN $1 AND $2 \
             AND ($3::bigint IS NULL OR d.user_id = $3) GROUP BY d.day",
            &[&from, &to, &user],
        )
        .await?;
    let mut series: Vec<(i64, u64)> = (from..=to).map(|d| (d, 0)).collect();
    for r in &rows {
        let day: i64 = r.try_get(0)?;
        let cost: i64 = r.try_get(1)?;
        if let Some(slot) = usize::try_from(day - from)
            .ok()
            .and_then(|i| series.get_mut(i))
        {
            slot.1 = u64::try_from(cost).unwrap_or(0);
        }
    }
    Ok(series)
}

pub(super) async fn latency(c: &impl GenericClient, days: DayRange) -> PgResult<Latency> {
    let rows = c
        .query(
            "SELECT upper_ms, SUM(total_n)::bigint, SUM(ttfb_n)::bigint FROM usage_latency_daily d \
             WHERE ($1::bigint IS NULL OR d.day >= $1) AND ($2::bigint IS NULL OR d.day <= $2) \
             GROUP BY upper_ms ORDER BY upper_ms",
            &[&days.from, &days.to],
        )
        .await?;
    let mut total = Vec::with_capacity(rows.len());
    let mut ttfb = Vec::with_capacity(rows.len());
    for r in &rows {
        let upper: i64 = r.try_get(0)?;
        total.push((upper, r.try_get::<_, i64>(1)?));
        ttfb.push((upper, r.try_get::<_, i64>(2)?));
    }
    Ok(Latency {
        total_p50: crate::store::rollups::percentile(&total, 50),
        total_p95: crate::store::rollups::percentile(&total, 95),
        ttfb_p50: crate::store::rollups::percentile(&ttfb, 50),
        ttfb_p95: crate::store::rollups::percentile(&ttfb, 95),
    })
}

pub(super) async fn models_seen(c: &impl GenericClient, days: DayRange) -> PgResult<Vec<String>> {
    let rows = c
        .query(
            "SELECT DISTINCT d.model COLLATE \"C\" AS m FROM usage_daily d \
             WHERE ($1::bigint IS NULL OR d.day >= $1) AND ($2::bigint IS NULL OR d.day <= $2) \
             AND d.upstream <> '-' AND d.model <> '-' ORDER BY m",
            &[&days.from, &days.to],
        )
        .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

pub(super) async fn first_usage_day(c: &impl GenericClient) -> PgResult<Option<i64>> {
    c.query_one("SELECT MIN(day) FROM usage_daily", &[])
        .await?
        .try_get(0)
}

/// Cost per key and per user of the events since `since_ms` (budget seeding).
pub(super) async fn spend_since(
    c: &impl GenericClient,
    since_ms: i64,
) -> PgResult<crate::store::keys::SpendByOwner> {
    let cost = wide_sum("cost_nanos");
    let keys = c
        .query(
            &format!("SELECT key_id, {cost} FROM usage_events WHERE ts >= $1 AND key_id IS NOT NULL GROUP BY key_id"),
            &[&since_ms],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, wide(r, 1)?)))
        .collect::<PgResult<Vec<_>>>()?;
    let users = c
        .query(
            &format!("SELECT user_id, {cost} FROM usage_events WHERE ts >= $1 AND user_id IS NOT NULL GROUP BY user_id"),
            &[&since_ms],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, wide(r, 1)?)))
        .collect::<PgResult<Vec<_>>>()?;
    Ok((keys, users))
}

pub(super) async fn usage_count(c: &impl GenericClient) -> PgResult<u64> {
    let n: i64 = c
        .query_one("SELECT COUNT(*) FROM usage_events", &[])
        .await?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}
