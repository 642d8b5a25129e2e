//! The usage side of the store on both backends: the same events, written in the
//! same uneven and overlapping batches, must give SQLite's figures on PostgreSQL for
//! every report, rollup, budget span, request-log page and pruning; and concurrent
//! writers of the same request ids store each once.

use tollgate_filters::metering::UsageEvent;
use tollgate_filters::Role;

use crate::store::pg::test_db::TestDatabase;
use crate::store::pg::PgOptions;
use crate::store::testing::{add_user, sample_events};
use crate::store::{
    temp_pg_store, temp_store, DayRange, GroupBy, RequestFilter, StatusFilter, Store, DAY_MS,
};

const ALL: [GroupBy; 5] = [
    GroupBy::Key,
    GroupBy::User,
    GroupBy::Model,
    GroupBy::Upstream,
    GroupBy::Day,
];

/// A SQLite and a PostgreSQL store with the same users (alice 1, bob 2) and key `k1`
/// of alice's; the handles keep both alive.
struct Twins {
    _dir: tempfile::TempDir,
    sqlite: Store,
    _db: TestDatabase,
    pg: Store,
}

fn twins() -> Twins {
    let (dir, sqlite) = temp_store();
    add_user(&sqlite, "alice", Role::Member, 0);
    add_user(&sqlite, "bob", Role::Member, 0);
    sqlite
        .conn()
        .unwrap()
        .execute_batch(
            "INSERT INTO api_keys (id, user_id, name, secret_hmac, prefix, created_at) VALUES ('k1', 1, 'laptop', x'00', 'p', 0)",
        )
        .unwrap();
    let (db, pg) = temp_pg_store();
    db.execute(
        "INSERT INTO users (id, username, role, created_at) VALUES (1, 'alice', 'member', 0), (2, 'bob', 'member', 0)",
    )
    .unwrap();
    db.execute(
        "INSERT INTO api_keys (id, user_id, name, secret_hmac, prefix, created_at) VALUES ('k1', 1, 'laptop', '\\x00', 'p', 0)",
    )
    .unwrap();
    Twins {
        _dir: dir,
        sqlite,
        _db: db,
        pg,
    }
}

impl Twins {
    fn both(&self) -> [&Store; 2] {
        [&self.sqlite, &self.pg]
    }

    fn insert(&self, events: &[UsageEvent]) {
        for s in self.both() {
            s.insert_usage(events).unwrap();
        }
    }

    /// Asserts that `f` gives the same answer on both backends, and returns it.
    fn same<T: PartialEq + std::fmt::Debug>(&self, what: &str, f: impl Fn(&Store) -> T) -> T {
        let (a, b) = (f(&self.sqlite), f(&self.pg));
        assert_eq!(a, b, "{what}: SQLite, then PostgreSQL");
        a
    }

    /// Every figure the store reports about usage, on both.
    fn assert_same_reports(&self, first_day: i64) {
        self.same("count", |s| s.usage_count().unwrap());
        let ranges = [
            DayRange::all(),
            DayRange::days(first_day, first_day + 2),
            DayRange::days(first_day + 1, first_day + 1),
            DayRange::days(first_day + 4, first_day + 9),
        ];
        for by in ALL {
            let all = self.same("usage report", |s| s.usage_report(by, None, None).unwrap());
            assert!(!all.is_empty());
            let start = (first_day + 1) * DAY_MS + 5_000;
            self.same("usage report since/until", |s| {
                s.usage_report(by, Some(start), Some(start + 2 * DAY_MS))
                    .unwrap()
            });
            for days in ranges {
                self.same("rollup report", |s| {
                    s.rollup_report(by, days, None).unwrap()
                });
                self.same("rollup report of a user", |s| {
                    s.rollup_report(by, days, Some(2)).unwrap()
                });
            }
        }
        for days in ranges {
            self.same("totals", |s| s.rollup_totals(days, None).unwrap());
            self.same("totals of a user", |s| {
                s.rollup_totals(days, Some(1)).unwrap()
            });
            self.same("latency", |s| s.latency(days).unwrap());
            self.same("models", |s| s.models_seen(days).unwrap());
        }
        self.same("first day", |s| s.first_usage_day().unwrap());
        for (user, all_time) in [(None, true), (Some(1), true), (None, false)] {
            self.same("spend", |s| {
                let mut rows = s
                    .rollup_spend(first_day + 2, first_day, first_day + 3, all_time, user)
                    .unwrap();
                rows.sort_by(|a, b| (&a.key_id, &a.user).cmp(&(&b.key_id, &b.user)));
                rows
            });
            self.same("overview", |s| {
                s.rollup_overview(first_day + 3, first_day + 1, first_day, user)
                    .unwrap()
            });
        }
        for days in ranges {
            self.same("requests", |s| s.rollup_requests(days).unwrap());
        }
        for since in [0, (first_day + 2) * DAY_MS] {
            self.same("spend since", |s| {
                let (mut keys, mut users) = s.spend_since(since).unwrap();
                keys.sort();
                users.sort();
                (keys, users)
            });
        }
    }
}

type LogRow = (String, i64, Option<String>, Option<String>, Option<i64>);

/// Every request matching `f`, page by page: request id, time, key and user names,
/// upstreams tried.
fn log_pages(s: &Store, f: &RequestFilter, limit: usize) -> Vec<LogRow> {
    let mut f = f.clone();
    let mut out = Vec::new();
    loop {
        let page = s.request_log(&f, limit).unwrap();
        assert!(page.rows.len() <= limit);
        out.extend(
            page.rows
                .into_iter()
                .map(|r| (r.request_id, r.ts_ms, r.key_name, r.username, r.attempts)),
        );
        match page.next {
            Some(c) => f.before = Some(c),
            None => return out,
        }
    }
}

#[test]
fn postgres_reports_what_sqlite_reports_through_retries_and_pruning() {
    let t = twins();
    let first_day = 20_000;
    let mut events = sample_events(1_000, 7, first_day * DAY_MS + 1_234, 7 * 60_000 + 17);
    for (i, e) in events.iter_mut().enumerate() {
        if i % 9 == 0 {
            e.key_id = Some("k1".into());
            e.user_id = Some(1);
        }
    }
    // Uneven batches, each after the first repeating half of the one before (retries).
    let mut at: usize = 0;
    for size in [1, 31, 32, 33, 64, 100, 239, 500] {
        t.insert(&events[at.saturating_sub(size / 2)..at + size]);
        at += size;
    }
    assert_eq!(t.same("count", |s| s.usage_count().unwrap()), 1_000);
    t.assert_same_reports(first_day);

    for f in [
        RequestFilter::default(),
        RequestFilter {
            user_id: Some(1),
            ..Default::default()
        },
        RequestFilter {
            key_id: Some("k1".into()),
            ..Default::default()
        },
        RequestFilter {
            model: Some("claude-sonnet-4".into()),
            status: StatusFilter::Errors,
            ..Default::default()
        },
        RequestFilter {
            upstream: Some("-".into()),
            status: StatusFilter::Ok,
            user_id: Some(2),
            ..Default::default()
        },
    ] {
        let rows = t.same("request log", |s| log_pages(s, &f, 37));
        assert!(!rows.is_empty(), "{f:?}");
    }

    // Pruning in several transactions, cut inside a day.
    let cut = (first_day + 2) * DAY_MS + 3_600_000;
    let pruned = t.same("pruned", |s| s.prune_usage(cut).unwrap());
    assert!(pruned > 300, "{pruned}");
    t.assert_same_reports(first_day);
    // The rollups still equal a scan of the events left, on PostgreSQL too.
    for by in ALL {
        let rolled: Vec<_> =
            t.pg.rollup_report(by, DayRange::days(first_day + 3, first_day + 9), None)
                .unwrap()
                .into_iter()
                .map(|r| r.usage)
                .collect();
        let scanned =
            t.pg.usage_report(
                by,
                Some((first_day + 3) * DAY_MS),
                Some((first_day + 10) * DAY_MS),
            )
            .unwrap();
        assert_eq!(rolled, scanned, "{by:?}");
    }
}

fn event(id: &str, ts_ms: i64, input: u64, cost: u64) -> UsageEvent {
    let mut e = sample_events(1, 1, ts_ms, 1).remove(0);
    e.request_id = id.into();
    e.key_id = Some("k1".into());
    e.user_id = Some(1);
    e.model_served = Some("m".into());
    e.usage.input = input;
    e.cost_nanos = cost;
    e
}

#[test]
fn sums_saturate_alike_on_both() {
    let t = twins();
    let big = (1u64 << 32) + 7;
    t.insert(&[event("a", 1, big, big), event("b", 2, big, 3)]);
    let rows = t.same("report", |s| {
        s.usage_report(GroupBy::Model, None, None).unwrap()
    });
    assert_eq!(
        (rows[0].input_tokens, rows[0].cost_nanos),
        (2 * big, big + 3)
    );
    t.insert(&[
        event("c", 3, u64::MAX, u64::MAX),
        event("d", 4, u64::MAX, u64::MAX),
    ]);
    let rows = t.same("report", |s| {
        s.usage_report(GroupBy::Key, None, None).unwrap()
    });
    assert_eq!((rows[0].requests, rows[0].cost_nanos), (4, u64::MAX));
    // The rollup rows saturate at the largest bigint on both, without failing the write.
    t.insert(&[event("e", 5, u64::MAX, u64::MAX)]);
    let totals = t.same("totals", |s| {
        s.rollup_totals(DayRange::all(), None).unwrap()
    });
    assert_eq!(totals.usage.cost_nanos, i64::MAX as u64);
    t.same("spend", |s| s.spend_since(0).unwrap());
    t.same("rollup spend", |s| {
        s.rollup_spend(0, 0, 0, true, None).unwrap()
    });
}

#[test]
fn a_nul_in_a_name_does_not_block_the_batch() {
    let (_db, s) = temp_pg_store();
    let mut e = event("n", 1, 1, 1);
    e.model_requested = Some("bad\0model".into());
    e.model_served = None;
    s.insert_usage(&[e, event("ok", 2, 1, 1)]).unwrap();
    assert_eq!(s.usage_count().unwrap(), 2);
    let models = s.usage_report(GroupBy::Model, None, None).unwrap();
    assert_eq!(
        models.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(),
        ["badmodel", "m"]
    );
}

#[test]
fn concurrent_writers_of_the_same_ids_store_each_once() {
    let (db, s) = temp_pg_store();
    db.execute(
        "INSERT INTO users (id, username, role, created_at) VALUES (1, 'alice', 'member', 0)",
    )
    .unwrap();
    let events = sample_events(2_000, 3, 1_700_000_000_000, 1_000);
    // Two instances (a pool each) with two writers each, replaying the same spool,
    // each in its own order and batches: a fixed lock order means no deadlock, ON
    // CONFLICT means no double.
    let other = Store::open_postgres(&PgOptions::parse(db.url(), 2).unwrap()).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = if w < 2 { s.clone() } else { other.clone() };
            let mut mine = events.clone();
            if w % 2 == 1 {
                mine.reverse();
            }
            std::thread::spawn(move || {
                let size = 150 + 70 * w;
                for chunk in mine.chunks(size) {
                    s.insert_usage(chunk).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(s.usage_count().unwrap(), 2_000);
    let (sqlite_dir, sqlite) = temp_store();
    sqlite.insert_usage(&events).unwrap();
    for by in ALL {
        let pg: Vec<_> = s
            .rollup_report(by, DayRange::all(), None)
            .unwrap()
            .into_iter()
            .map(|r| r.usage)
            .collect();
        let want: Vec<_> = sqlite
            .rollup_report(by, DayRange::all(), None)
            .unwrap()
            .into_iter()
            .map(|r| r.usage)
            .collect();
        // The user name differs (no users on the SQLite side): compare the figures.
        if by != GroupBy::User {
            assert_eq!(pg, want, "{by:?}");
        }
    }
    drop(sqlite_dir);
}
