//! The rollup reads as they were in SQL (a `GROUP BY` with the overflow-proof sums,
//! before `scan.rs`): the reference the one-pass reads are held equal to.

use rusqlite::params;

use super::*;
use crate::store::usage::{wide_sum, wide_value};

/// The group expression over `usage_daily d` (users joined as `u`), the same labels as
/// [`GroupBy`]'s over the events.
fn group_sql(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Key => "d.key_id",
        GroupBy::User => "COALESCE(u.username, '-')",
        GroupBy::Model => "d.model",
        GroupBy::Upstream => "d.upstream",
        GroupBy::Day => "date(d.day * 86400, 'unixepoch')",
    }
}

/// The nine sums a [`Totals`] reads ([`totals_at`]), each as two columns that cannot
/// overflow (`super::usage::wide_sum`).
static SUMS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
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

/// Reads the nine sums of [`SUMS`] from column `at` on.
fn totals_at(r: &rusqlite::Row<'_>, at: usize, group: String) -> rusqlite::Result<Totals> {
    let n = |i: usize| wide_value(r, at + 2 * i);
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

/// `WHERE` for a day range and an optional user, parameters ?1 ?2 ?3.
const RANGE: &str = "(?1 IS NULL OR d.day >= ?1) AND (?2 IS NULL OR d.day <= ?2) AND (?3 IS NULL OR d.user_id = ?3)";

pub fn report(s: &Store, by: GroupBy, days: DayRange, user: Option<i64>) -> Vec<Totals> {
    let conn = s.conn().unwrap();
    let sql = format!(
        "SELECT {g} AS grp, {sums} FROM usage_daily d LEFT JOIN users u ON u.id = d.user_id \
         WHERE {RANGE} GROUP BY grp ORDER BY grp",
        g = group_sql(by),
        sums = *SUMS
    );
    let mut st = conn.prepare(&sql).unwrap();
    let rows = st
        .query_map(params![days.from, days.to, user], |r| {
            totals_at(r, 1, r.get(0)?)
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

pub fn spend(
    s: &Store,
    day_from: i64,
    month_from: i64,
    today: i64,
    user: Option<i64>,
) -> Vec<KeySpend> {
    let conn = s.conn().unwrap();
    let span = |from: &str| {
        wide_sum(&format!(
            "CASE WHEN d.day BETWEEN {from} AND ?3 THEN d.cost_nanos ELSE 0 END"
        ))
    };
    let sql = format!(
        "SELECT d.key_id, COALESCE(u.username, '-'), {}, {}, {} \
         FROM usage_daily d LEFT JOIN users u ON u.id = d.user_id \
         WHERE (?4 IS NULL OR d.user_id = ?4) GROUP BY d.key_id, d.user_id",
        span("?1"),
        span("?2"),
        wide_sum("d.cost_nanos")
    );
    let mut st = conn.prepare(&sql).unwrap();
    let rows = st
        .query_map(params![day_from, month_from, today, user], |r| {
            Ok(KeySpend {
                key_id: r.get(0)?,
                user: r.get(1)?,
                day: wide_value(r, 2)?,
                month: wide_value(r, 4)?,
                total: wide_value(r, 6)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

pub fn totals(s: &Store, days: DayRange, user: Option<i64>) -> Totals {
    let conn = s.conn().unwrap();
    let sql = format!("SELECT {} FROM usage_daily d WHERE {RANGE}", *SUMS);
    let t = conn
        .prepare(&sql)
        .unwrap()
        .query_row(params![days.from, days.to, user], |r| {
            totals_at(r, 0, String::new())
        })
        .unwrap();
    t
}
