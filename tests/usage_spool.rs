//! Usage exactly once on PostgreSQL through the local spool (CONTRACT section 8), on the
//! real server `.ci/setup` starts, with a [`Forwarder`] between the store and it that
//! the test cuts to make the database unreachable (the shared server stays up).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::calls::stalled_stream;
use common::forwarder::{target_of, through, Forwarder};
use common::{eventually, Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};
use tollgate::store::pg::test_db::TestDatabase;
use tollgate::store::pg::PgOptions;
use tollgate::store::{DayRange, GroupBy, RequestFilter, Store};
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

/// A master key for gateways on PostgreSQL (every instance is given the same).
const MASTER_KEY: &str = "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"";

/// A gateway on its own PostgreSQL database, reached through a forwarder the test
/// cuts, serving every model from an OpenAI mock; with a key of member `alice`, and
/// the store read directly (not through the forwarder).
struct OnPostgres {
    gw: Gateway,
    key: String,
    fwd: Forwarder,
    /// The database as the test reads it, past the forwarder.
    direct: Store,
    _openai: MockUpstream,
    _db: TestDatabase,
}

impl OnPostgres {
    async fn start() -> OnPostgres {
        let db = TestDatabase::create();
        let fwd = Forwarder::start(target_of(db.url()));
        let openai = MockUpstream::start().await;
        let url = through(db.url(), fwd.addr());
        let mut gw = GatewayBuilder::new()
            .only_upstream(Upstream::openai("o", &openai).keys(&["sk-o"]))
            .master_key(MASTER_KEY)
            .user("alice", "member")
            .build();
        // storage.url instead of storage.path.
        gw.edit_config(|text| {
            text.lines()
                .map(|l| match l.starts_with("  path: ") {
                    true => format!("  url: \"{url}\""),
                    false => l.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        });
        gw.start();
        let key = gw.create_key("alice", &[]);
        let direct = Store::open_postgres(&PgOptions::parse(db.url(), 1).unwrap()).unwrap();
        OnPostgres {
            gw,
            key,
            fwd,
            direct,
            _openai: openai,
            _db: db,
        }
    }

    /// One chat request, answered 200; its request id.
    async fn chat(&self) -> String {
        let r = self.gw.chat(&self.key, CHAT).await;
        assert_eq!(r.status, 200, "{}", r.text());
        request_id(&r)
    }
}

/// The request id the gateway gave an answer.
fn request_id(r: &common::http::Response) -> String {
    r.header("x-tollgate-request-id")
        .unwrap_or_else(|| panic!("no request id: {}", r.text()))
        .to_owned()
}

/// Every request id stored, sorted.
fn stored_ids(store: &Store) -> Vec<String> {
    let mut f = RequestFilter::default();
    let mut ids = Vec::new();
    loop {
        let page = store.request_log(&f, 500).unwrap();
        ids.extend(page.rows.into_iter().map(|r| r.request_id));
        match page.next {
            Some(c) => f.before = Some(c),
            None => break,
        }
    }
    ids.sort();
    ids
}

/// Waits (bounded) until the database holds `n` events.
async fn stored(store: &Store, n: u64) {
    eventually(
        &format!("{n} usage events in PostgreSQL"),
        Duration::from_secs(20),
        async || store.usage_count().unwrap() == n,
    )
    .await;
}

async fn spool_depth(gw: &Gateway) -> Option<f64> {
    gw.metrics().await.value("tollgate_usage_spool_events")
}

#[tokio::test]
async fn a_database_outage_mid_traffic_loses_and_doubles_no_event() {
    let p = OnPostgres::start().await;

    let done: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let count = || done.lock().unwrap().len();
    // Traffic: one request after another, each answered in full, until told to stop.
    let traffic = async {
        while !stop.load(Ordering::SeqCst) {
            let id = p.chat().await;
            done.lock().unwrap().push(id);
        }
    };
    let outage = async {
        eventually("traffic", Duration::from_secs(20), async || count() >= 20).await;
        p.fwd.cut();
        let at_cut = count();
        eventually(
            "traffic during the outage",
            Duration::from_secs(20),
            async || count() >= at_cut + 40,
        )
        .await;
        // The events wait in the spool, and say so.
        eventually("spooled events", Duration::from_secs(20), async || {
            spool_depth(&p.gw).await.is_some_and(|d| d > 0.0)
        })
        .await;
        assert!(
            p.gw.wait_for_log_async("delivery to the store stopped", Duration::from_secs(20))
                .await
        );
        p.fwd.restore();
        let at_restore = count();
        eventually(
            "traffic after the outage",
            Duration::from_secs(20),
            async || count() >= at_restore + 20,
        )
        .await;
        stop.store(true, Ordering::SeqCst);
    };
    tokio::join!(traffic, outage);

    let mut want = done.lock().unwrap().clone();
    stored(&p.direct, want.len() as u64).await;
    want.sort();
    assert_eq!(stored_ids(&p.direct), want, "every answered request, once");
    eventually("an empty spool", Duration::from_secs(20), async || {
        spool_depth(&p.gw).await == Some(0.0)
    })
    .await;
    let logs = p.gw.logs();
    assert_eq!(
        logs.matches("delivery to the store stopped").count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches("delivery to the store resumed").count(),
        1,
        "{logs}"
    );
    let t = p.direct.rollup_totals(DayRange::all(), None).unwrap();
    assert_eq!(t.usage.requests, want.len() as u64);
}

#[tokio::test]
async fn kill_9_mid_stream_then_a_restart_loses_and_doubles_nothing_completed() {
    let mut p = OnPostgres::start().await;
    let mut want = Vec::new();
    // Delivered at once while the database answers.
    for _ in 0..10 {
        want.push(p.chat().await);
    }
    stored(&p.direct, 10).await;
    // Then unreachable: the next ones wait in the spool on disk.
    p.fwd.cut();
    for _ in 0..15 {
        want.push(p.chat().await);
    }
    eventually("15 spooled events", Duration::from_secs(20), async || {
        spool_depth(&p.gw).await == Some(15.0)
    })
    .await;
    // A stream in flight, and kill -9.
    let open = stalled_stream(p.gw.proxy_addr, &p.key).await;
    p.gw.kill();
    drop(open);
    p.fwd.restore();
    assert_eq!(p.direct.usage_count().unwrap(), 10);

    p.gw.start();
    stored(&p.direct, 25).await;
    for _ in 0..5 {
        want.push(p.chat().await);
    }
    stored(&p.direct, 30).await;
    want.sort();
    assert_eq!(stored_ids(&p.direct), want);
    // SIGTERM: whatever is queued is delivered before the exit.
    for _ in 0..5 {
        want.push(p.chat().await);
    }
    p.gw.terminate();
    let status = p.gw.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}\n{}", p.gw.logs());
    want.sort();
    assert_eq!(stored_ids(&p.direct), want);
}

#[tokio::test]
async fn sigterm_while_the_database_is_unreachable_keeps_the_events_for_the_next_start() {
    let mut p = OnPostgres::start().await;
    // The key in the gateway's cache first (a key it has not seen is looked up in the
    // store, which is about to be unreachable).
    let mut want = vec![p.chat().await];
    stored(&p.direct, 1).await;
    p.fwd.cut();
    for _ in 0..7 {
        want.push(p.chat().await);
    }
    p.gw.terminate();
    let status = p.gw.exit_status(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}\n{}", p.gw.logs());
    assert!(
        p.gw.logs().contains("are delivered at the next start"),
        "{}",
        p.gw.logs()
    );
    assert_eq!(p.direct.usage_count().unwrap(), 1);
    p.fwd.restore();
    p.gw.start();
    stored(&p.direct, 8).await;
    want.sort();
    assert_eq!(stored_ids(&p.direct), want);
}
