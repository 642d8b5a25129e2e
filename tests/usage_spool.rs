//! Usage exactly once on PostgreSQL through the local spool (CONTRACT section 8), on the
//! real server `.ci/setup` starts, with a [`Forwarder`] between the store and it that
//! the test cuts to make the database unreachable (the shared server stays up).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::forwarder::{target_of, through, Forwarder};
use tollgate::store::pg::test_db::TestDatabase;
use tollgate::store::pg::PgOptions;
use tollgate::store::{DayRange, GroupBy, Store};
use tollgate::usage::shipper::Shipper;
use tollgate::usage::spool::Spool;
use tollgate_filters::metering::UsageEvent;
use tollgate_filters::usage::Usage;

fn event(n: usize) -> UsageEvent {
    UsageEvent {
        request_id: format!("req-{n:05}"),
        ts_ms: 1_700_000_000_000 + n as i64 * 1_000,
        key_id: Some(format!("k{}", n % 3)),
        user_id: None,
        upstream: Some("openai".into()),
        model_requested: Some("gpt-4o-mini".into()),
        model_served: Some("gpt-4o-mini".into()),
        dialect: "openai",
        upstream_kind: Some("openai"),
        endpoint: "chat_completions",
        streamed: n % 2 == 0,
        status: 200,
        usage: Usage {
            input: 10 + n as u64,
            output: 5,
            ..Usage::default()
        },
        estimated: false,
        cost_nanos: 1_000 + n as u64,
        priced: true,
        ttfb_ms: Some(3),
        total_ms: 9,
        overhead_us: 10,
        error: None,
        attempts: 1,
    }
}

/// Requests, input tokens and cost over `events`, as the store should report them.
fn totals(events: &[UsageEvent]) -> (u64, u64, u64) {
    events.iter().fold((0, 0, 0), |(r, i, c), e| {
        (r + 1, i + e.usage.input, c + e.cost_nanos)
    })
}

fn stored_totals(store: &Store) -> (u64, u64, u64) {
    let rows = store.usage_report(GroupBy::Model, None, None).unwrap();
    let rolled = store.rollup_totals(DayRange::all(), None).unwrap().usage;
    let scanned = rows.iter().fold((0, 0, 0), |(r, i, c), row| {
        (r + row.requests, i + row.input_tokens, c + row.cost_nanos)
    });
    // The rollups count exactly what the events hold.
    assert_eq!(
        (rolled.requests, rolled.input_tokens, rolled.cost_nanos),
        scanned
    );
    scanned
}

#[test]
fn an_unreachable_database_delays_delivery_and_loses_or_doubles_nothing() {
    let db = TestDatabase::create();
    let fwd = Forwarder::start(target_of(db.url()));
    let url = through(db.url(), fwd.addr());
    let store = Store::open_postgres(&PgOptions::parse(&url, 2).unwrap()).unwrap();
    // Read through a connection of its own, which the cut does not reach.
    let direct = Store::open_postgres(&PgOptions::parse(db.url(), 1).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let shipper = Shipper::new(Spool::open(dir.path()).unwrap(), store);
    let events: Vec<UsageEvent> = (0..3_000).map(event).collect();

    shipper.append(&events[..1_000]).unwrap();
    assert_eq!(shipper.ship_all().unwrap(), 1_000);
    assert_eq!(shipper.spool().depth(), 0);

    fwd.cut();
    // The writer's side keeps working: batches land in the spool.
    for chunk in events[1_000..2_500].chunks(100) {
        shipper.append(chunk).unwrap();
        assert!(shipper.ship_all().is_err());
    }
    assert_eq!(shipper.spool().depth(), 1_500);
    assert_eq!(direct.usage_count().unwrap(), 1_000);

    fwd.restore();
    shipper.append(&events[2_500..]).unwrap();
    // The pool may hand out a connection the cut closed: the next round delivers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = shipper.ship_all() {
        assert!(Instant::now() < deadline, "still not delivered: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(shipper.spool().depth(), 0);
    assert_eq!(direct.usage_count().unwrap(), 3_000);
    assert_eq!(stored_totals(&direct), totals(&events));

    // A spool replayed after a crash (delivered, not yet deleted) doubles nothing.
    shipper.append(&events[500..1_500]).unwrap();
    assert_eq!(shipper.ship_all().unwrap(), 1_000);
    assert_eq!(direct.usage_count().unwrap(), 3_000);
    assert_eq!(stored_totals(&direct), totals(&events));
}

#[test]
fn what_a_stopped_process_left_in_the_spool_ships_at_the_next_start() {
    let db = TestDatabase::create();
    let options = PgOptions::parse(db.url(), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<UsageEvent> = (0..700).map(event).collect();
    {
        let spool = Spool::open(dir.path()).unwrap();
        spool.append(&events[..400]).unwrap();
        spool.append(&events[400..]).unwrap();
    }
    let store = Store::open_postgres(&options).unwrap();
    let shipper = Shipper::new(Spool::open(dir.path()).unwrap(), store.clone());
    assert_eq!(shipper.spool().depth(), 700);
    assert_eq!(shipper.ship_all().unwrap(), 700);
    assert_eq!(store.usage_count().unwrap(), 700);
    assert_eq!(stored_totals(&store), totals(&events));
}
