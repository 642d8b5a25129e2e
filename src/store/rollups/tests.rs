use super::*;
use crate::store::pg_usage::raw;
use crate::store::testing::{on_both_backends, sample_events, temp_store, TestBackend};
use std::collections::HashMap;

on_both_backends!(
    rollups_equal_a_scan_of_the_events_through_retries_and_pruning,
    latency_percentiles_come_from_the_buckets,
    models_seen_are_the_routed_ones,
    spend_per_key_in_one_pass_equals_the_reports_per_span,
);

const ALL: [GroupBy; 5] = [
    GroupBy::Key,
    GroupBy::User,
    GroupBy::Model,
    GroupBy::Upstream,
    GroupBy::Day,
];

/// The rollups over `days` equal the event scan over the same whole days, for every
/// grouping.
fn assert_rollups_match(s: &Store, days: DayRange) {
    for by in ALL {
        let rolled: Vec<UsageRow> = s
            .rollup_report(by, days, None)
            .unwrap()
            .into_iter()
            .map(|t| t.usage)
            .collect();
        let scanned = s
            .usage_report(
                by,
                days.from.map(|d| d * DAY_MS),
                days.to.map(|d| (d + 1) * DAY_MS),
            )
            .unwrap();
        assert_eq!(rolled, scanned, "{by:?} over {days:?}");
    }
}

/// `SELECT` over the events of user `uid` in `days`: (requests, errors, cost).
fn scan_user(s: &Store, uid: i64, days: DayRange) -> (u64, u64, u64) {
    let (from, to) = (days.from.unwrap_or(0), days.to.unwrap_or(1 << 30));
    let n = raw::row_i64(
        s,
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT), CAST(COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0) AS TEXT), \
             CAST(COALESCE(SUM(cost_nanos), 0) AS TEXT) FROM usage_events \
             WHERE user_id = {uid} AND ts >= {} AND ts < {}",
            from * DAY_MS,
            (to + 1) * DAY_MS
        ),
    );
    (n[0] as u64, n[1] as u64, n[2] as u64)
}

fn rollups_equal_a_scan_of_the_events_through_retries_and_pruning(b: &TestBackend) {
    let s = &b.store;
    crate::store::testing::add_user(s, "alice", tollgate_filters::Role::Member, 0);
    crate::store::testing::add_user(s, "bob", tollgate_filters::Role::Member, 0);
    // Five days of events, 37 minutes apart, written in uneven batches; every batch
    // after the first repeats part of the one before (a retried batch).
    let events = sample_events(1_000, 7, 20_000 * DAY_MS + 1_234, 7 * 60_000 + 17);
    let mut at: usize = 0;
    for size in [1, 31, 32, 33, 64, 100, 239, 500] {
        let from = at.saturating_sub(size / 2);
        s.insert_usage(&events[from..at + size]).unwrap();
        at += size;
    }
    assert_eq!(at, events.len());
    assert_eq!(s.usage_count().unwrap(), 1_000);
    let first = 20_000;
    for days in [
        DayRange::all(),
        DayRange::days(first, first + 2),
        DayRange::days(first + 1, first + 1),
        DayRange::days(first + 4, first + 9),
    ] {
        assert_rollups_match(s, days);
        for uid in [1, 2] {
            let t = s.rollup_totals(days, Some(uid)).unwrap();
            assert_eq!(
                (t.usage.requests, t.errors, t.usage.cost_nanos),
                scan_user(s, uid, days)
            );
        }
    }
    let total = s.rollup_totals(DayRange::all(), None).unwrap();
    assert_eq!(total.usage.requests, 1_000);

    // Pruning in the middle of a day takes exactly the pruned events out.
    let cut = (first + 2) * DAY_MS + 5 * 3_600_000;
    let pruned = s.prune_usage(cut).unwrap();
    assert!(pruned > 400 && pruned < 600, "{pruned}");
    assert_rollups_match(s, DayRange::all());
    assert_rollups_match(s, DayRange::days(first + 2, first + 2));
    let after = s.rollup_totals(DayRange::all(), None).unwrap();
    assert_eq!(after.usage.requests, 1_000 - pruned as u64);
    // No row is left for the days pruned whole.
    let left = raw::row_i64(
        s,
        &format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM usage_daily WHERE day < {}",
            first + 2
        ),
    )[0];
    assert_eq!(left, 0);
    assert_eq!(s.first_usage_day().unwrap(), Some(first + 2));
}

#[test]
fn the_migration_rolls_up_the_events_already_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let events = sample_events(300, 11, 20_100 * DAY_MS, 20 * 60_000);
    {
        // A store at migration 6, its events written the way that version did.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        for (v, name, sql) in crate::store::MIGRATIONS.iter().filter(|m| m.0 <= 6) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, ?2, 0)",
                params![v, name],
            )
            .unwrap();
        }
        for e in &events {
            conn.execute(
                "INSERT INTO usage_events (request_id, ts, key_id, user_id, upstream, model_requested, model_served, dialect, \
                 streamed, status, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
                 estimated, cost_nanos, ttfb_ms, total_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'openai', 0, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
                params![
                    e.request_id, e.ts_ms, e.key_id, e.user_id, e.upstream, e.model_requested, e.model_served,
                    e.status, e.usage.input as i64, e.usage.output as i64, e.usage.cache_read as i64,
                    e.usage.cache_write as i64, e.usage.reasoning as i64, e.estimated, e.cost_nanos as i64,
                    e.ttfb_ms.map(|t| t as i64), e.total_ms as i64
                ],
            )
            .unwrap();
        }
    }
    let s = Store::open(&path).unwrap();
    s.check().unwrap();
    assert_rollups_match(&s, DayRange::all());
    assert_rollups_match(&s, DayRange::days(20_101, 20_101));
    let backfilled = s.latency(DayRange::all()).unwrap();
    // The writer's statements give the same histogram as the migration's.
    let (_d2, fresh) = temp_store();
    fresh.insert_usage(&events).unwrap();
    assert_eq!(fresh.latency(DayRange::all()).unwrap(), backfilled);
    assert!(backfilled.total_p50.is_some());
}

fn latency_percentiles_come_from_the_buckets(b: &TestBackend) {
    let s = &b.store;
    let mut events = sample_events(100, 3, 20_000 * DAY_MS, 1_000);
    for (i, e) in events.iter_mut().enumerate() {
        e.status = 200;
        // 1..=100 ms: p50 is 50 ms (a bucket bound), p95 95 ms (bucket up to 100).
        e.total_ms = i as u64 + 1;
        e.ttfb_ms = (i < 10).then_some(7);
    }
    // Errors count in no percentile.
    events[99].status = 500;
    events[99].total_ms = 1_000_000;
    s.insert_usage(&events).unwrap();
    let l = s.latency(DayRange::days(20_000, 20_000)).unwrap();
    assert_eq!(
        l,
        Latency {
            total_p50: Some(50),
            total_p95: Some(100),
            ttfb_p50: Some(8),
            ttfb_p95: Some(8),
        }
    );
    assert_eq!(s.latency(DayRange::days(1, 2)).unwrap(), Latency::default());
}

#[test]
fn percentiles_of_buckets() {
    assert_eq!(percentile(&[], 50), None);
    assert_eq!(percentile(&[(5, 0)], 50), None);
    assert_eq!(percentile(&[(1, 1)], 50), Some(1));
    assert_eq!(percentile(&[(1, 1), (2, 1)], 50), Some(1));
    assert_eq!(percentile(&[(1, 1), (2, 1)], 95), Some(2));
    assert_eq!(percentile(&[(1, 94), (2, 5), (3, 1)], 95), Some(2));
    assert_eq!(percentile(&[(1, 95), (2, 5)], 95), Some(1));
}

fn models_seen_are_the_routed_ones(b: &TestBackend) {
    let s = &b.store;
    let mut events = sample_events(50, 5, 20_000 * DAY_MS, 1_000);
    for e in &mut events {
        e.upstream = Some("o".into());
    }
    events[0].upstream = None;
    events[0].model_served = Some("no-route-model".into());
    s.insert_usage(&events).unwrap();
    assert_eq!(
        s.models_seen(DayRange::all()).unwrap(),
        ["claude-sonnet-4", "gemini-2.0-flash", "gpt-4o-mini"]
    );
    assert!(s.models_seen(DayRange::days(0, 1)).unwrap().is_empty());
}

/// Every row of both rollup tables, in key order.
fn rollup_rows(s: &Store) -> (Vec<Vec<i64>>, Vec<String>, Vec<[i64; 4]>) {
    let conn = s.conn().unwrap();
    let mut st = conn
        .prepare(
            "SELECT day, user_id, requests, errors, input_tokens, output_tokens, cache_read_tokens, \
             cache_write_tokens, reasoning_tokens, estimated, cost_nanos, key_id || '|' || upstream || '|' || model \
             FROM usage_daily ORDER BY day, key_id, user_id, upstream, model",
        )
        .unwrap();
    let mut nums = Vec::new();
    let mut names = Vec::new();
    for row in st
        .query_map([], |r| {
            let n: Vec<i64> = (0..11).map(|i| r.get(i)).collect::<Result<_, _>>()?;
            Ok((n, r.get::<_, String>(11)?))
        })
        .unwrap()
    {
        let (n, name) = row.unwrap();
        nums.push(n);
        names.push(name);
    }
    let latency = conn
        .prepare(
            "SELECT day, upper_ms, total_n, ttfb_n FROM usage_latency_daily ORDER BY day, upper_ms",
        )
        .unwrap()
        .query_map([], |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (nums, names, latency)
}

/// The batch path (all events new: summed in Rust) and the read-back path (a batch
/// that skipped a duplicate: summed by SQL over the stored rows) give the same rollups,
/// absurd figures, missing fields and every latency bucket edge included.
#[test]
fn a_batch_summed_in_rust_equals_the_sql_aggregate() {
    let mut events = sample_events(400, 5, 20_000 * DAY_MS + 99, 11 * 60_000 + 3);
    for (i, e) in events.iter_mut().enumerate() {
        match i % 9 {
            0 => e.usage.input = u64::MAX,
            1 => e.cost_nanos = u64::MAX / 3,
            2 => e.ttfb_ms = None,
            3 => e.model_served = None,
            4 => {
                e.model_served = None;
                e.model_requested = None;
            }
            5 => e.upstream = None,
            6 => e.status = 299,
            7 => e.status = 400,
            _ => {}
        }
        e.total_ms = [0, 1, 2, 7, 8, 9, 1_000, 1_001, 123_456_789, u64::MAX][i % 10];
        if let Some(t) = e.ttfb_ms.as_mut() {
            *t = [0, 3, 4, 5, 10_000, 10_001][i % 6];
        }
    }
    let (_a, rust) = temp_store();
    let (_b, sql) = temp_store();
    for s in [&rust, &sql] {
        crate::store::testing::add_user(s, "alice", tollgate_filters::Role::Member, 0);
        crate::store::testing::add_user(s, "bob", tollgate_filters::Role::Member, 0);
    }
    for chunk in events.chunks(97) {
        rust.insert_usage(chunk).unwrap();
        // The first event again: the batch is not all new, so SQL sums what was stored.
        let mut again = chunk.to_vec();
        again.push(chunk[0].clone());
        sql.insert_usage(&again).unwrap();
    }
    assert_eq!(rust.usage_count().unwrap(), 400);
    assert_eq!(sql.usage_count().unwrap(), 400);
    let (r, s) = (rollup_rows(&rust), rollup_rows(&sql));
    assert!(!r.0.is_empty() && !r.2.is_empty());
    assert_eq!(r, s);
    assert_rollups_match(&rust, DayRange::all());
}

/// One pass for budgets gives, per key and per user, the cost the reports give for
/// each span: today, a month so far, all time (absurd costs saturating alike).
fn spend_per_key_in_one_pass_equals_the_reports_per_span(b: &TestBackend) {
    let s = &b.store;
    crate::store::testing::add_user(s, "alice", tollgate_filters::Role::Member, 0);
    crate::store::testing::add_user(s, "bob", tollgate_filters::Role::Member, 0);
    let first = 20_000;
    let mut events = sample_events(600, 3, first * DAY_MS + 5, 97 * 60_000 + 11);
    events[7].cost_nanos = u64::MAX;
    events[8].cost_nanos = u64::MAX;
    s.insert_usage(&events).unwrap();
    let last = events.last().unwrap().ts_ms / DAY_MS;
    let (today, month_from) = (last - 3, last - 20);
    for user in [None, Some(1)] {
        let spend = s
            .rollup_spend(today, month_from, today, true, user)
            .unwrap();
        assert!(spend
            .iter()
            .any(|k| k.day > 0 && k.month > k.day && k.total > k.month));
        for (days, pick) in [
            (DayRange::days(today, today), 0),
            (DayRange::days(month_from, today), 1),
            (DayRange::all(), 2),
        ] {
            let figure = |k: &KeySpend| [k.day, k.month, k.total][pick];
            let mut by_key = HashMap::new();
            let mut by_user = HashMap::new();
            for k in &spend {
                by_key.insert(k.key_id.clone(), figure(k));
                let u: &mut u64 = by_user.entry(k.user.clone()).or_default();
                *u = u.saturating_add(figure(k));
            }
            for (by, got) in [(GroupBy::Key, &by_key), (GroupBy::User, &by_user)] {
                let want: HashMap<String, u64> = s
                    .rollup_report(by, days, user)
                    .unwrap()
                    .into_iter()
                    .map(|t| (t.usage.group, t.usage.cost_nanos))
                    .collect();
                // A group with no events in the span is absent from the report, 0 here.
                for (name, cost) in got {
                    let expected = want.get(name).copied().unwrap_or(0);
                    assert_eq!(*cost, expected, "{name}: {by:?} {days:?} {user:?}");
                }
                assert!(want.keys().all(|k| got.contains_key(k)), "{by:?} {days:?}");
            }
        }
    }
}

/// The one-pass reads (`scan.rs`) equal the SQL `GROUP BY` they replace
/// (`sql_reference.rs`) for every grouping, range and user: absurd figures saturating
/// alike, a negative figure (never written by this version) counted as 0, and rows of a
/// user no longer stored grouped as `-`; and the overview's one pass equals the reports
/// it stands for.
#[test]
fn one_pass_reads_equal_the_sql_group_by_they_replace() {
    let (_dir, s) = temp_store();
    crate::store::testing::add_user(&s, "alice", tollgate_filters::Role::Member, 0);
    crate::store::testing::add_user(&s, "bob", tollgate_filters::Role::Member, 0);
    let first = 20_000;
    let mut events = sample_events(800, 9, first * DAY_MS + 5, 23 * 60_000 + 7);
    for i in [3, 4, 40] {
        events[i].cost_nanos = u64::MAX;
        events[i + 1].usage.input = u64::MAX;
    }
    s.insert_usage(&events).unwrap();
    s.conn()
        .unwrap()
        .execute(
            "INSERT INTO usage_daily VALUES (?1, 'k-old', 99, 'o', 'm-old', 3, 1, -5, 7, 0, 0, 0, 0, -9)",
            [first + 1],
        )
        .unwrap();
    let last = events.last().unwrap().ts_ms / DAY_MS;
    assert!(last > first + 10);
    for user in [None, Some(1), Some(2), Some(99)] {
        for days in [
            DayRange::all(),
            DayRange::days(first, first),
            DayRange::days(first + 1, first + 3),
            DayRange::days(last - 2, last + 5),
            DayRange::days(0, 1),
        ] {
            for by in ALL {
                assert_eq!(
                    s.rollup_report(by, days, user).unwrap(),
                    sql_reference::report(&s, by, days, user),
                    "{by:?} {days:?} {user:?}"
                );
            }
            let totals = sql_reference::totals(&s, days, user);
            assert_eq!(
                s.rollup_totals(days, user).unwrap(),
                totals,
                "{days:?} {user:?}"
            );
            if user.is_none() {
                assert_eq!(s.rollup_requests(days).unwrap(), totals.usage.requests);
            }
        }
        for (today, month_from) in [
            (first + 4, first + 1),
            (last, last - 6),
            (last + 40, last + 31),
        ] {
            let all = sql_reference::spend(&s, today, month_from, today, user);
            assert_eq!(
                s.rollup_spend(today, month_from, today, true, user)
                    .unwrap(),
                all,
                "{today} {user:?}"
            );
            // Without all time: the same day and month figures for every key with cost
            // in the month (the others absent), and no total.
            let month_only: Vec<KeySpend> = all
                .iter()
                .filter(|k| k.month > 0 || k.day > 0)
                .map(|k| KeySpend {
                    total: 0,
                    ..k.clone()
                })
                .collect();
            let got: Vec<KeySpend> = s
                .rollup_spend(today, month_from, today, false, user)
                .unwrap()
                .into_iter()
                .filter(|k| k.month > 0 || k.day > 0)
                .collect();
            assert_eq!(got, month_only, "{today} {user:?}");
            let series_from = today - 29;
            let o = s
                .rollup_overview(today, month_from, series_from, user)
                .unwrap();
            let month = DayRange::days(month_from, today);
            let report = |by| s.rollup_report(by, month, user).unwrap();
            assert_eq!(
                o.today,
                s.rollup_totals(DayRange::days(today, today), user).unwrap()
            );
            assert_eq!(o.month, s.rollup_totals(month, user).unwrap());
            assert_eq!(o.models, report(GroupBy::Model));
            assert_eq!(o.users, report(GroupBy::User));
            assert_eq!(o.keys, report(GroupBy::Key));
            let per_day: HashMap<String, u64> = s
                .rollup_report(GroupBy::Day, DayRange::days(series_from, today), user)
                .unwrap()
                .into_iter()
                .map(|t| (t.usage.group, t.usage.cost_nanos))
                .collect();
            assert_eq!(o.series.len(), 30);
            let mut labels = Vec::new();
            for (day, cost) in &o.series {
                let label: String = s
                    .conn()
                    .unwrap()
                    .query_row("SELECT date(?1 * 86400, 'unixepoch')", [day], |r| r.get(0))
                    .unwrap();
                assert_eq!(*cost, per_day.get(&label).copied().unwrap_or(0), "{label}");
                labels.push(label);
            }
            assert!(
                per_day.keys().all(|d| labels.contains(d)),
                "{today} {user:?}"
            );
        }
    }
}
