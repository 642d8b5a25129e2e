//! Queries on `usage_events`: batched inserts (exactly once per request id), grouped
//! totals for `tollgate usage` and `GET /admin/usage`, and pruning.

use std::sync::LazyLock;

use rusqlite::{params, OptionalExtension};
use tollgate_filters::metering::UsageEvent;

use super::{Store, StoreError};

/// Rows per INSERT statement, largest first: a batch goes in statements of the largest
/// size that fits what is left, so a batch of any size takes a few statements, not one
/// per row past the last full 32 (22 columns: 704 parameters, far below SQLite's limit).
const ROWS_PER_INSERT: [usize; 6] = [32, 16, 8, 4, 2, 1];
const COLUMNS: usize = 22;

/// Events deleted per transaction when pruning (a few milliseconds of work each).
const PRUNE_BATCH: usize = 2_000;
/// The pause between two pruning transactions, for the writers waiting on the lock.
const PRUNE_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// The INSERT of each size of [`ROWS_PER_INSERT`], built once (their text is also the
/// key of rusqlite's statement cache).
static INSERTS: LazyLock<[String; ROWS_PER_INSERT.len()]> =
    LazyLock::new(|| ROWS_PER_INSERT.map(insert_sql));

/// `INSERT OR FAIL ... VALUES (?, ...), ... ON CONFLICT(request_id) DO NOTHING` for
/// `rows` rows.
///
/// `OR FAIL`: a multi-row statement that may abort part-way (the default, `ABORT`, for
/// the `NOT NULL` columns) makes SQLite keep a statement journal, a copy of every page
/// the statement changes so that its own rows can be taken back alone. Past 64 KiB it
/// goes to a temporary file: that was more than half of the writer's `pwrite` calls
/// (load-tests/RESULTS.md). A failed statement is never taken back alone here: any error
/// rolls back the batch's whole transaction ([`Store::insert_usage`]), so `FAIL`, which
/// leaves the statement's earlier rows in place until then, needs no journal and loses
/// nothing.
fn insert_sql(rows: usize) -> String {
    let row = format!("({})", vec!["?"; COLUMNS].join(", "));
    format!(
        "INSERT OR FAIL INTO usage_events (request_id, ts, key_id, user_id, upstream, model_requested, model_served, dialect, \
         endpoint, streamed, status, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
         reasoning_tokens, estimated, cost_nanos, ttfb_ms, total_ms, attempts, upstream_kind) VALUES {} \
         ON CONFLICT(request_id) DO NOTHING",
        vec![row; rows].join(", ")
    )
}

/// A count as stored: SQLite's integers end at `i64::MAX`, where a count saturates.
pub(super) fn stored(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// A value bound to one parameter of an INSERT, borrowing the event's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

/// One event's [`COLUMNS`] values, in the column order of [`insert_sql`].
fn row<'a>(e: &'a UsageEvent) -> [Param<'a>; COLUMNS] {
    let int = Param::Int;
    let count = |n: u64| int(stored(n));
    let opt_text = |t: Option<&'a str>| t.map_or(Param::Null, Param::Text);
    [
        Param::Text(&e.request_id),
        int(e.ts_ms),
        opt_text(e.key_id.as_deref()),
        e.user_id.map_or(Param::Null, int),
        opt_text(e.upstream.as_deref()),
        opt_text(e.model_requested.as_deref()),
        opt_text(e.model_served.as_deref()),
        Param::Text(e.dialect),
        Param::Text(e.endpoint),
        int(i64::from(e.streamed)),
        int(i64::from(e.status)),
        count(e.usage.input),
        count(e.usage.output),
        count(e.usage.cache_read),
        count(e.usage.cache_write),
        count(e.usage.reasoning),
        int(i64::from(e.estimated)),
        count(e.cost_nanos),
        e.ttfb_ms.map_or(Param::Null, count),
        count(e.total_ms),
        int(i64::from(e.attempts)),
        opt_text(e.upstream_kind),
    ]
}

/// One INSERT statement of the batch's transaction with what its parameters hold:
/// SQLite keeps a parameter's value from one execution to the next, so a value equal
/// to the one already bound (the key, user, model, upstream, dialect... of a run of
/// events) is not bound again. Binding every text anew (SQLite copies each) was a
/// quarter of the writer's work per event.
struct Insert<'c, 'a> {
    st: rusqlite::CachedStatement<'c>,
    rows: usize,
    /// What each parameter holds; `None`: not bound by this batch yet.
    bound: Vec<Option<Param<'a>>>,
}

impl<'c, 'a> Insert<'c, 'a> {
    fn new(tx: &'c rusqlite::Connection, size: usize) -> rusqlite::Result<Self> {
        Ok(Insert {
            st: tx.prepare_cached(&INSERTS[size])?,
            rows: ROWS_PER_INSERT[size],
            bound: vec![None; ROWS_PER_INSERT[size] * COLUMNS],
        })
    }

    /// Inserts `events` (exactly [`Insert::rows`] of them); how many were new.
    fn execute(&mut self, events: &[&'a UsageEvent]) -> rusqlite::Result<usize> {
        // Fewer would insert the previous execution's rows again in the rest.
        if events.len() != self.rows {
            return Err(rusqlite::Error::InvalidParameterCount(
                events.len() * COLUMNS,
                self.rows * COLUMNS,
            ));
        }
        for (at, e) in events.iter().enumerate() {
            for (col, value) in row(e).into_iter().enumerate() {
                let i = at * COLUMNS + col;
                if self.bound[i] == Some(value) {
                    continue;
                }
                match value {
                    Param::Null => self.st.raw_bind_parameter(i + 1, rusqlite::types::Null)?,
                    Param::Int(n) => self.st.raw_bind_parameter(i + 1, n)?,
                    Param::Text(t) => self.st.raw_bind_parameter(i + 1, t)?,
                }
                self.bound[i] = Some(value);
            }
        }
        self.st.raw_execute()
    }
}

/// The SQL of an overflow-free sum of an integer column, as two result columns for
/// [`wide_value`]: SQLite's `SUM` fails the whole query with "integer overflow" past
/// 2^63, which one absurd stored figure was enough to reach (and a report or the budget
/// seeding at start-up then failed for good). The column is split into its high and low
/// 32 bits (negatives count as 0), each summed exactly in 64 bits (up to 2^31 rows per
/// group), and recombined in 128 bits. A PostgreSQL store can use `SUM(col)`, which is
/// `numeric` there, and saturate the same way.
pub(super) fn wide_sum(col: &str) -> String {
    format!("SUM(MAX({col}, 0) >> 32), SUM(MAX({col}, 0) & 4294967295)")
}

/// The sum whose two halves ([`wide_sum`]) are the columns `at` and `at + 1`,
/// saturated at `u64::MAX`.
pub(super) fn wide_value(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<u64> {
    let half = |i: usize| {
        r.get::<_, Option<i64>>(i)
            .map(|v| v.unwrap_or(0).max(0) as u128)
    };
    let total = (half(at)? << 32) + half(at + 1)?;
    Ok(u64::try_from(total).unwrap_or(u64::MAX))
}

/// How usage totals are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    User,
    Model,
    Upstream,
    Day,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "key" => GroupBy::Key,
            "user" => GroupBy::User,
            "model" => GroupBy::Model,
            "upstream" => GroupBy::Upstream,
            "day" => GroupBy::Day,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Key => "key",
            GroupBy::User => "user",
            GroupBy::Model => "model",
            GroupBy::Upstream => "upstream",
            GroupBy::Day => "day",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            GroupBy::Key => "COALESCE(e.key_id, '-')",
            GroupBy::User => "COALESCE(u.username, '-')",
            GroupBy::Model => "COALESCE(e.model_served, e.model_requested, '-')",
            GroupBy::Upstream => "COALESCE(e.upstream, '-')",
            GroupBy::Day => "strftime('%Y-%m-%d', e.ts / 1000, 'unixepoch')",
        }
    }
}

/// Totals for one group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageRow {
    pub group: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub estimated_requests: u64,
    pub cost_nanos: u64,
}

impl Store {
    /// Inserts a batch in one transaction; an event whose request id is already stored
    /// is ignored, so a retried batch never double-counts. Rows go in multi-row
    /// statements ([`ROWS_PER_INSERT`]): one statement step per row was a third of the
    /// writer's time.
    pub fn insert_usage(&self, events: &[UsageEvent]) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            let records = events.iter().map(super::UsageRecord::from).collect();
            return super::pg_usage::insert(pg, records).map(drop);
        }
        let mut conn = self.conn()?;
        // IMMEDIATE: the rollups read the last rowid first; a deferred transaction that
        // read would fail (busy) instead of waiting if another process wrote meanwhile.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let before = super::rollups::last_rowid(&tx)?;
        let mut inserted = 0;
        {
            // Statements are prepared when first needed, then kept for the batch.
            let mut inserts: [Option<Insert<'_, '_>>; ROWS_PER_INSERT.len()] = Default::default();
            // In time order (a stable sort: events of the same millisecond keep theirs, so
            // the request log's order of them is the same): the time indexes are then
            // appended to, which SQLite does without a search from the root.
            let mut sorted: Vec<&UsageEvent> = events.iter().collect();
            sorted.sort_by_key(|e| e.ts_ms);
            let mut rest = &sorted[..];
            while !rest.is_empty() {
                let size = ROWS_PER_INSERT
                    .iter()
                    .position(|n| *n <= rest.len())
                    .unwrap_or(ROWS_PER_INSERT.len() - 1);
                let insert = match &mut inserts[size] {
                    Some(insert) => insert,
                    slot => slot.insert(Insert::new(&tx, size)?),
                };
                let (now, later) = rest.split_at(insert.rows.min(rest.len()));
                inserted += insert.execute(now)?;
                rest = later;
            }
        }
        // The dashboard's per-day rollups, in the same transaction (store::rollups): from
        // the events in hand when all were stored, else from the rows that were.
        if inserted == events.len() {
            super::rollups::add_batch(&tx, events)?;
        } else {
            super::rollups::add_inserted(&tx, before)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Totals grouped by `by`, for events with `since_ms <= ts < until_ms`. Sums never
    /// overflow: see [`wide_sum`].
    pub fn usage_report(
        &self,
        by: GroupBy,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<Vec<UsageRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::usage_report(pg, by, since_ms, until_ms);
        }
        let conn = self.conn()?;
        let sums = [
            "e.input_tokens",
            "e.output_tokens",
            "e.cache_read_tokens",
            "e.cache_write_tokens",
            "e.reasoning_tokens",
            "e.estimated",
            "e.cost_nanos",
        ]
        .map(wide_sum)
        .join(", ");
        let sql = format!(
            "SELECT {g} AS grp, COUNT(*), {sums} \
             FROM usage_events e LEFT JOIN users u ON u.id = e.user_id \
             WHERE (?1 IS NULL OR e.ts >= ?1) AND (?2 IS NULL OR e.ts < ?2) GROUP BY grp ORDER BY grp",
            g = by.sql()
        );
        let mut st = conn.prepare(&sql)?;
        let rows = st
            .query_map(params![since_ms, until_ms], |r| {
                // Column 1 is the count, then two columns per sum.
                let sum = |k: usize| wide_value(r, 2 + 2 * k);
                Ok(UsageRow {
                    group: r.get(0)?,
                    requests: r.get::<_, i64>(1)?.max(0) as u64,
                    input_tokens: sum(0)?,
                    output_tokens: sum(1)?,
                    cache_read_tokens: sum(2)?,
                    cache_write_tokens: sum(3)?,
                    reasoning_tokens: sum(4)?,
                    estimated_requests: sum(5)?,
                    cost_nanos: sum(6)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Deletes events older than `before_ms` (and takes them out of the rollups);
    /// returns how many. In transactions of about [`PRUNE_BATCH`] events (the oldest
    /// first, cut at a timestamp so that the rollups lose exactly what is deleted) with
    /// [`PRUNE_PAUSE`] between them, with the lock let go: a year of events deleted at
    /// once would hold SQLite's write lock (and this store's mutex) for seconds, and the
    /// usage writer, key touches and admin writes of a running gateway with it.
    pub fn prune_usage(&self, before_ms: i64) -> Result<usize, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::prune(pg, before_ms);
        }
        let mut total = 0;
        loop {
            let (n, last) = {
                let mut conn = self.conn()?;
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                // The batch's newest timestamp; none: fewer than a batch are left.
                let newest: Option<i64> = tx
                    .query_row(
                        "SELECT ts FROM usage_events WHERE ts < ?1 ORDER BY ts LIMIT 1 OFFSET ?2",
                        params![before_ms, PRUNE_BATCH as i64 - 1],
                        |r| r.get(0),
                    )
                    .optional()?;
                let cut = newest.map_or(before_ms, |ts| (ts + 1).min(before_ms));
                super::rollups::subtract_before(&tx, cut)?;
                let n = tx.execute("DELETE FROM usage_events WHERE ts < ?1", [cut])?;
                tx.commit()?;
                (n, cut == before_ms)
            };
            total += n;
            if last {
                return Ok(total);
            }
            std::thread::sleep(PRUNE_PAUSE);
        }
    }

    /// Inserts events read back from the usage spool (`crate::usage::spool`), exactly
    /// once per request id like [`Store::insert_usage`]; how many were new. PostgreSQL
    /// only: a SQLite store is written directly, never through the spool.
    pub fn insert_usage_records(
        &self,
        records: &[super::UsageRecord],
    ) -> Result<usize, StoreError> {
        match self.pg() {
            Some(pg) => super::pg_usage::insert(pg, records.to_vec()),
            None => Err(StoreError::Invalid(
                "usage records are delivered to a PostgreSQL store only".into(),
            )),
        }
    }

    /// Whether the store is PostgreSQL (`storage.url`).
    pub fn is_postgres(&self) -> bool {
        self.pg().is_some()
    }

    /// How many events are stored (tests and `check`).
    pub fn usage_count(&self) -> Result<u64, StoreError> {
        if let Some(pg) = self.pg() {
            return super::pg_usage::usage_count(pg);
        }
        Ok(self
            .conn()?
            .query_row("SELECT COUNT(*) FROM usage_events", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pg_usage::raw;
    use crate::store::testing::{on_both_backends, TestBackend};
    use tollgate_filters::usage::Usage;

    /// A statement that fails part-way (`OR FAIL` keeps its earlier rows until then)
    /// leaves nothing of its batch: not the rows of statements before it, not its own
    /// earlier rows, not the rollups. The batch can then be written again whole.
    #[test]
    fn a_batch_that_fails_part_way_leaves_no_row_and_no_rollup() {
        let (_dir, s) = crate::store::temp_store();
        // 40 events: one statement of 32 rows, then one of 8 whose fifth row fails.
        let events: Vec<_> = (0..40)
            .map(|n| event(&format!("f{n:02}"), n, "m", 1, 1))
            .collect();
        s.conn()
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON usage_events WHEN NEW.request_id = 'f36' \
                 BEGIN SELECT RAISE(FAIL, 'refused'); END;",
            )
            .unwrap();
        assert!(s.insert_usage(&events).is_err());
        assert_eq!(s.usage_count().unwrap(), 0);
        let t = s
            .rollup_totals(crate::store::DayRange::all(), None)
            .unwrap();
        assert_eq!(t.usage.requests, 0);

        s.conn()
            .unwrap()
            .execute_batch("DROP TRIGGER refuse")
            .unwrap();
        s.insert_usage(&events).unwrap();
        assert_eq!(s.usage_count().unwrap(), 40);
        let t = s
            .rollup_totals(crate::store::DayRange::all(), None)
            .unwrap();
        assert_eq!((t.usage.requests, t.usage.cost_nanos), (40, 40));
    }

    on_both_backends!(
        multi_row_inserts_store_every_field_once,
        every_row_keeps_its_own_values_when_its_neighbours_differ,
        sums_are_exact_across_32_bits_and_saturate_instead_of_failing,
        rollups_sum_exactly_across_32_bits,
        exactly_once_grouping_and_pruning,
    );

    fn event(id: &str, ts_ms: i64, model: &str, input: u64, cost: u64) -> UsageEvent {
        UsageEvent {
            request_id: id.into(),
            ts_ms,
            key_id: Some("k1".into()),
            user_id: None,
            upstream: Some("openai".into()),
            model_requested: Some(model.into()),
            model_served: Some(model.into()),
            dialect: "openai",
            upstream_kind: Some("openai"),
            endpoint: "chat_completions",
            streamed: true,
            status: 200,
            usage: Usage {
                input,
                output: 2,
                ..Usage::default()
            },
            estimated: false,
            cost_nanos: cost,
            priced: true,
            ttfb_ms: Some(5),
            total_ms: 9,
            overhead_us: 100,
            error: None,
            attempts: 1,
        }
    }

    fn multi_row_inserts_store_every_field_once(b: &TestBackend) {
        let s = &b.store;
        // Two full multi-row statements and a remainder, then an overlapping retry.
        let events: Vec<_> = (0..70)
            .map(|n| {
                event(
                    &format!("r{n}"),
                    1_000 + n,
                    &format!("m{}", n % 3),
                    n as u64,
                    2 * n as u64,
                )
            })
            .collect();
        s.insert_usage(&events[..40]).unwrap();
        s.insert_usage(&events).unwrap();
        assert_eq!(s.usage_count().unwrap(), 70);
        let rows = s.usage_report(GroupBy::Model, None, None).unwrap();
        let want = |m: i64| {
            let ns = (0..70).filter(|n| n % 3 == m);
            (
                ns.clone().count() as u64,
                ns.clone().sum::<i64>() as u64,
                2 * ns.sum::<i64>() as u64,
            )
        };
        assert_eq!(
            rows.iter()
                .map(|r| (r.requests, r.input_tokens, r.cost_nanos))
                .collect::<Vec<_>>(),
            [want(0), want(1), want(2)]
        );
        let row = raw::rows_text(
            s,
            "SELECT key_id, CAST(ts AS TEXT), upstream, CAST(user_id AS TEXT), dialect, endpoint, \
             CAST(CAST(streamed AS INTEGER) AS TEXT), CAST(output_tokens AS TEXT), CAST(ttfb_ms AS TEXT) \
             FROM usage_events WHERE request_id = 'r37'",
        )
        .remove(0);
        let text = |v: &str| Some(v.to_owned());
        assert_eq!(
            row,
            [
                text("k1"),
                text("1037"),
                text("openai"),
                None,
                text("openai"),
                text("chat_completions"),
                text("1"),
                text("2"),
                text("5")
            ]
        );
    }

    /// An event like its neighbours in some fields, unlike them in others (values and
    /// NULLs alternating at different periods), out of time order: parameters are
    /// bound only when they change, and rows are inserted in time order.
    fn varied(n: usize) -> UsageEvent {
        let some = |period: usize, v: String| (n % period != 0).then_some(v);
        let mut e = event(
            &format!("v{n}"),
            5_000 - (n as i64 % 7) * 10,
            "m",
            n as u64,
            0,
        );
        e.key_id = some(3, format!("k{}", n % 2));
        e.user_id = (n % 4 != 1).then_some(n as i64 % 3);
        e.upstream = some(5, "up".into());
        e.model_requested = some(2, format!("m{}", n / 10));
        e.model_served = some(6, "served".into());
        e.dialect = if n % 3 == 0 { "anthropic" } else { "openai" };
        e.upstream_kind = (n % 4 != 0).then_some("openai");
        e.status = if n % 9 == 0 { 500 } else { 200 };
        e.usage.output = (n % 2) as u64;
        e.estimated = n % 5 == 0;
        e.cost_nanos = (n / 4) as u64;
        e.ttfb_ms = (n % 7 != 0).then_some(n as u64);
        e
    }

    fn every_row_keeps_its_own_values_when_its_neighbours_differ(b: &TestBackend) {
        let s = &b.store;
        // 32 + 16 + 8 + 4 + 2 + 1 rows, twice (the statements reused in one batch).
        let events: Vec<_> = (0..126).map(varied).collect();
        s.insert_usage(&events).unwrap();
        let got = raw::rows_text(
            s,
            "SELECT request_id, CAST(ts AS TEXT), key_id, CAST(user_id AS TEXT), upstream, model_requested, \
             model_served, dialect, upstream_kind, CAST(status AS TEXT), CAST(input_tokens AS TEXT), \
             CAST(output_tokens AS TEXT), CAST(CAST(estimated AS INTEGER) AS TEXT), CAST(cost_nanos AS TEXT), \
             CAST(ttfb_ms AS TEXT) FROM usage_events ORDER BY request_id",
        );
        let mut want: Vec<Vec<Option<String>>> = events
            .iter()
            .map(|e| {
                let r = crate::store::UsageRecord::from(e);
                [
                    Some(r.request_id),
                    Some(r.ts.to_string()),
                    r.key_id,
                    r.user_id.map(|u| u.to_string()),
                    r.upstream,
                    r.model_requested,
                    r.model_served,
                    Some(r.dialect),
                    r.upstream_kind,
                    Some(r.status.to_string()),
                    Some(r.input_tokens.to_string()),
                    Some(r.output_tokens.to_string()),
                    Some(i64::from(r.estimated).to_string()),
                    Some(r.cost_nanos.to_string()),
                    r.ttfb_ms.map(|t| t.to_string()),
                ]
                .into()
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    fn sums_are_exact_across_32_bits_and_saturate_instead_of_failing(b: &TestBackend) {
        let s = &b.store;
        let big = (1u64 << 32) + 7;
        s.insert_usage(&[event("a", 1, "m", big, big), event("b", 2, "m", big, 3)])
            .unwrap();
        let rows = s.usage_report(GroupBy::Model, None, None).unwrap();
        assert_eq!(
            (rows[0].input_tokens, rows[0].cost_nanos),
            (2 * big, big + 3)
        );
        // Counts an older version stored unbounded: the report and the budget seeding
        // sum them without "integer overflow".
        let huge = [
            event("c", 3, "m", u64::MAX, u64::MAX),
            event("d", 4, "m", u64::MAX, u64::MAX),
        ];
        s.insert_usage(&huge).unwrap();
        let rows = s.usage_report(GroupBy::Key, None, None).unwrap();
        assert_eq!(
            (rows[0].requests, rows[0].input_tokens, rows[0].cost_nanos),
            (4, u64::MAX, u64::MAX)
        );
        let (keys, _) = s.spend_since(0).unwrap();
        assert_eq!(keys, [("k1".to_owned(), u64::MAX)]);
        // The rollups took them too (the writer's transaction did not fail), saturated
        // at SQLite's largest integer, and the dashboard's sums over them do not fail.
        let t = s
            .rollup_totals(crate::store::DayRange::all(), None)
            .unwrap();
        assert_eq!(t.usage.requests, 4);
        assert_eq!(t.usage.input_tokens, i64::MAX as u64);
        assert_eq!(t.usage.cost_nanos, i64::MAX as u64);
        let by_model = s
            .rollup_report(GroupBy::Model, crate::store::DayRange::all(), None)
            .unwrap();
        assert_eq!(by_model[0].usage.cost_nanos, i64::MAX as u64);
    }

    fn rollups_sum_exactly_across_32_bits(b: &TestBackend) {
        let s = &b.store;
        let big = (1u64 << 32) + 7;
        s.insert_usage(&[event("a", 1, "m", big, big), event("b", 2, "m", big, 3)])
            .unwrap();
        s.insert_usage(&[event("c", 3, "m", big, big)]).unwrap();
        let t = s
            .rollup_totals(crate::store::DayRange::all(), None)
            .unwrap();
        assert_eq!(
            (t.usage.requests, t.usage.input_tokens, t.usage.cost_nanos),
            (3, 3 * big, 2 * big + 3)
        );
    }

    fn exactly_once_grouping_and_pruning(b: &TestBackend) {
        let s = &b.store;
        let batch = [
            event("a", 1_000, "m1", 10, 7),
            event("b", 90_000_000, "m2", 5, 3),
        ];
        s.insert_usage(&batch).unwrap();
        s.insert_usage(&batch[..1]).unwrap();
        assert_eq!(s.usage_count().unwrap(), 2);
        let rows = s.usage_report(GroupBy::Model, None, None).unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.group.as_str(), r.input_tokens, r.cost_nanos))
                .collect::<Vec<_>>(),
            [("m1", 10, 7), ("m2", 5, 3)]
        );
        let days = s.usage_report(GroupBy::Day, None, None).unwrap();
        assert_eq!(
            days.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(),
            ["1970-01-01", "1970-01-02"]
        );
        let since = s.usage_report(GroupBy::Key, Some(2_000), None).unwrap();
        assert_eq!(since[0].requests, 1);
        assert_eq!(s.prune_usage(2_000).unwrap(), 1);
        assert_eq!(s.usage_count().unwrap(), 1);
        // More than one batch, with timestamps shared by several events (a batch is cut
        // at a timestamp); the rollups lose exactly what is deleted.
        let many: Vec<_> = (0..2 * PRUNE_BATCH + 5)
            .map(|n| event(&format!("p{n}"), n as i64 / 3, "m", 1, 1))
            .collect();
        s.insert_usage(&many).unwrap();
        assert_eq!(s.prune_usage(2_000).unwrap(), many.len());
        assert_eq!(s.usage_count().unwrap(), 1);
        let rows = s.usage_report(GroupBy::Model, None, None).unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.group.as_str(), r.requests, r.cost_nanos))
                .collect::<Vec<_>>(),
            [("m2", 1, 3)]
        );
        let t = s
            .rollup_totals(crate::store::DayRange::all(), None)
            .unwrap();
        assert_eq!((t.usage.requests, t.usage.cost_nanos), (1, 3));
    }
}
