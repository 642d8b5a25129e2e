//! Issue 14's proof that Tollgate outgrows one machine (CONTRACT section 8): three real
//! `tollgate serve` processes on one PostgreSQL database and one Redis, each in a
//! directory of its own (no control socket in common: a change reaches the others only
//! through PostgreSQL's NOTIFY) and each reaching the database through a [`Forwarder`]
//! of its own that the test can cut. Shown, one test each:
//!
//! 1. a key created through A works on B and C within 1 s; revoked through B, it is
//!    refused on A and C within 1 s;
//! 2. concurrent requests over the three overrun a small budget by at most the requests
//!    in flight, and the stored spend is what was admitted;
//! 3. an RPM limit of N admits exactly N across the three in a minute;
//! 4. `kill -9` of an instance mid-stream doubles nothing and loses none of the requests
//!    that completed before the last batch window; restarted, it delivers its spool;
//! 5. a 30 s PostgreSQL outage under traffic: cached keys keep being served, and every
//!    answered request is stored exactly once after the database returns;
//! 6. a Redis restart mid-run inflates no counter: the budget counter ends equal to the
//!    store's sum, not a multiple of it.
//!
//! Needs the PostgreSQL server and `redis-server` that `.ci/setup` provides.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::calls::stalled_stream;
use common::forwarder::{target_of, through, Forwarder};
use common::http::{request, try_request};
use common::limits::{
    budget_counter, burst, ok_count, server_minute, wait_counter, COST, O4_MINI, O4_MINI_PRICE,
};
use common::redis::TestRedis;
use common::{eventually, Gateway, GatewayBuilder, MockUpstream, Upstream, CHAT};
use serde_json::json;
use tollgate::store::pg::test_db::TestDatabase;
use tollgate::store::pg::PgOptions;
use tollgate::store::{RequestFilter, RequestRow, Store};

/// The bound CONTRACT section 8 sets on a change reaching every instance.
const WITHIN: Duration = Duration::from_secs(1);
/// How long events may wait in memory before they are written (CONTRACT: 100 ms), with
/// room for a busy machine's fsync: requests that completed earlier than this before a
/// `kill -9` must all be stored.
const LAST_BATCH_WINDOW: Duration = Duration::from_secs(1);

/// Three gateways (A, B, C) on one PostgreSQL database and one Redis, each through a
/// forwarder of its own; users `root` (admin) and `alice` (member).
struct Cluster {
    gws: Vec<Gateway>,
    /// `fwds[i]` stands between `gws[i]` and the database.
    fwds: Vec<Forwarder>,
    redis: TestRedis,
    /// The database as the test reads it, past the forwarders.
    direct: Store,
    /// An admin key of `root`, for the admin API.
    root: String,
    _mock: MockUpstream,
    _db: TestDatabase,
}

impl Cluster {
    async fn start() -> Cluster {
        let db = TestDatabase::create();
        let redis = TestRedis::start();
        let mock = MockUpstream::start().await;
        let (mut gws, mut fwds) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let fwd = Forwarder::start(target_of(db.url()));
            let mut config = GatewayBuilder::new()
                .only_upstream(Upstream::openai("o", &mock).keys(&["sk-o"]))
                .postgres(&through(db.url(), fwd.addr()))
                .limits("redis_url", format!("\"{}\"", redis.url()))
                .price("o4-mini*", O4_MINI_PRICE);
            if i == 0 {
                config = config.user("root", "admin").user("alice", "member");
            }
            gws.push(config.start());
            fwds.push(fwd);
        }
        assert!(gws[0].dir() != gws[1].dir() && gws[1].dir() != gws[2].dir());
        let root = gws[0].create_key("root", &[]);
        let direct = Store::open_postgres(&PgOptions::parse(db.url(), 2).unwrap()).unwrap();
        Cluster {
            gws,
            fwds,
            redis,
            direct,
            root,
            _mock: mock,
            _db: db,
        }
    }

    /// A new key of `alice` (`key create` with `extra`, through A's CLI).
    fn key(&self, extra: &[&str]) -> String {
        self.gws[0].create_key("alice", extra)
    }

    fn proxies(&self) -> Vec<SocketAddr> {
        self.gws.iter().map(|g| g.proxy_addr).collect()
    }

    /// Every usage event in the database.
    fn stored(&self) -> Vec<RequestRow> {
        let mut f = RequestFilter::default();
        let mut rows = Vec::new();
        loop {
            let page = self.direct.request_log(&f, 1_000).unwrap();
            rows.extend(page.rows);
            match page.next {
                Some(c) => f.before = Some(c),
                None => return rows,
            }
        }
    }

    /// The request ids stored, sorted; panics on one stored twice.
    fn stored_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.stored().into_iter().map(|r| r.request_id).collect();
        ids.sort();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "an event stored twice");
        ids
    }

    /// The summed cost of every event of `key` stored, once `n` answered ones are.
    async fn stored_spend(&self, key: &str, n: usize) -> i64 {
        let id = key_id(key);
        let what = format!("{n} answered requests of the key in PostgreSQL");
        eventually(&what, Duration::from_secs(20), async || {
            let rows: Vec<RequestRow> = self
                .stored()
                .into_iter()
                .filter(|r| r.key_id.as_deref() == Some(id))
                .collect();
            let answered = rows.iter().filter(|r| r.status == 200).count();
            assert!(answered <= n, "more events than requests: {answered}");
            (answered == n)
                .then(|| rows.iter().map(|r| r.cost_nanos).sum())
                .ok_or(answered)
        })
        .await
    }

    async fn spool_depth(&self, i: usize) -> Option<f64> {
        self.gws[i]
            .metrics()
            .await
            .value("tollgate_usage_spool_events")
    }

    async fn degraded(&self, i: usize) -> Option<f64> {
        self.gws[i]
            .metrics()
            .await
            .value("tollgate_shared_limits_degraded")
    }
}

/// The id part of a gateway key (`tg_<id>_<secret>`).
fn key_id(key: &str) -> &str {
    key.split('_').nth(1).unwrap()
}

async fn status(at: SocketAddr, key: &str) -> u16 {
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str())];
    let r = request(
        at,
        "POST",
        "/v1/chat/completions",
        &headers,
        CHAT.as_bytes(),
    )
    .await;
    r.status
}

/// Requests answered by one instance: (request id, when the answer was complete).
type Answered = Arc<Mutex<Vec<(String, Instant)>>>;

/// Steady traffic: on each instance, one request after another (20 a second), each
/// answered 200 in full, until stopped or until the instance cannot be reached.
struct Traffic {
    stop: Arc<AtomicBool>,
    answered: Vec<Answered>,
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
}

impl Traffic {
    fn start(at: &[SocketAddr], key: &str, body: &'static str) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let answered: Vec<Answered> = at.iter().map(|_| Answered::default()).collect();
        let tasks = at
            .iter()
            .zip(&answered)
            .map(|(addr, log)| {
                let (addr, log, stop) = (*addr, log.clone(), stop.clone());
                let auth = format!("Bearer {key}");
                tokio::spawn(async move {
                    let mut pace = tokio::time::interval(Duration::from_millis(50));
                    while !stop.load(Ordering::SeqCst) {
                        pace.tick().await;
                        let headers = [("authorization", auth.as_str())];
                        let path = "/v1/chat/completions";
                        let r = try_request(addr, "POST", path, &headers, body.as_bytes())
                            .await
                            .map_err(|e| format!("{addr}: {e}"))?;
                        assert_eq!(r.status, 200, "{addr}: {}", r.text());
                        let id = r.header("x-tollgate-request-id").unwrap().to_owned();
                        log.lock().unwrap().push((id, Instant::now()));
                    }
                    Ok(())
                })
            })
            .collect();
        Traffic {
            stop,
            answered,
            tasks,
        }
    }

    /// How many requests instance `i` has answered so far.
    fn count(&self, i: usize) -> usize {
        self.answered[i].lock().unwrap().len()
    }

    fn counts(&self) -> Vec<usize> {
        (0..self.answered.len()).map(|i| self.count(i)).collect()
    }

    /// Waits until every instance in `which` answered `more` requests past `from`.
    async fn until_more(&self, which: &[usize], from: &[usize], more: usize, what: &str) {
        eventually(what, Duration::from_secs(30), async || {
            let now = self.counts();
            which
                .iter()
                .all(|&i| now[i] >= from[i] + more)
                .then_some(())
                .ok_or(format!("{now:?}"))
        })
        .await
    }

    /// Stops; per instance, how its traffic ended (`Err`: it could not be reached) and
    /// what it answered.
    async fn stop(self) -> Vec<(Result<(), String>, Vec<(String, Instant)>)> {
        self.stop.store(true, Ordering::SeqCst);
        let mut out = Vec::new();
        for (task, log) in self.tasks.into_iter().zip(self.answered) {
            let ended = task.await.unwrap();
            out.push((ended, std::mem::take(&mut *log.lock().unwrap())));
        }
        out
    }
}

/// The ids of `answered`, sorted.
fn ids(answered: &[(String, Instant)]) -> Vec<String> {
    let mut ids: Vec<String> = answered.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_key_created_on_one_instance_works_on_the_others_and_a_revocation_reaches_all() {
    let c = Cluster::start().await;
    let [a, b, cc] = [0, 1, 2].map(|i| c.gws[i].proxy_addr);
    let r = c.gws[0]
        .admin_as(&c.root)
        .post("/admin/keys", json!({"user": "alice"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_owned();
    let id = r.json()["id"].as_str().unwrap().to_owned();
    for (name, at) in [("B", b), ("C", cc)] {
        let what = format!("the key created through A to work on {name}");
        eventually(&what, WITHIN, async || status(at, &key).await == 200).await;
    }
    assert_eq!(status(a, &key).await, 200);

    // Every instance knows the key now; revoked through B, A and C refuse it.
    let r = c.gws[1]
        .admin_as(&c.root)
        .delete(&format!("/admin/keys/{id}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(status(b, &key).await, 401, "refused at once where revoked");
    for (name, at) in [("A", a), ("C", cc)] {
        let what = format!("the revocation through B to reach {name}");
        eventually(&what, WITHIN, async || status(at, &key).await == 401).await;
    }
}

#[tokio::test]
async fn concurrent_requests_over_three_instances_overrun_a_budget_by_at_most_those_in_flight() {
    let c = Cluster::start().await;
    let budget = 4_000_000; // $0.004: one after another, 3 requests get through
    let key = c.key(&["--budget-usd", "0.004", "--budget-period", "total"]);
    let at = c.proxies();
    let in_flight = 6;
    let mut total = 0;
    for _ in 0..5 {
        total += ok_count(&burst(&at, &key, in_flight).await);
        let counter = budget_counter(&c.redis).await;
        wait_counter(&c.redis, &counter, total * COST).await;
    }
    assert!(total >= 3, "refused before the budget was spent: {total}");
    let in_flight = i64::try_from(in_flight).unwrap();
    assert!(
        total * COST < budget + in_flight * COST,
        "{total} admitted: more than the budget plus the requests in flight"
    );
    // The stored spend is what was admitted (and what Redis counted).
    let spent = c.stored_spend(&key, usize::try_from(total).unwrap()).await;
    assert_eq!(spent, total * COST);
    // Spent up: every instance refuses now.
    for addr in &at {
        assert_eq!(burst(&[*addr], &key, 1).await, [429]);
    }
}

#[tokio::test]
async fn an_rpm_limit_admits_exactly_its_number_across_three_instances() {
    let c = Cluster::start().await;
    let at = c.proxies();
    // A burst that crosses the Redis server's minute gets two windows: then the next key.
    let mut checked = false;
    for _ in 0..3 {
        let key = c.key(&["--rpm", "5"]);
        let minute = server_minute(&c.redis);
        let statuses = burst(&at, &key, 15).await;
        if server_minute(&c.redis) == minute {
            assert_eq!(ok_count(&statuses), 5, "{statuses:?}");
            checked = true;
            break;
        }
    }
    assert!(checked, "three bursts each crossed a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_completed_request_and_doubles_none() {
    let mut c = Cluster::start().await;
    let key = c.key(&[]);
    let at = c.proxies();
    let traffic = Traffic::start(&at, &key, CHAT);
    traffic
        .until_more(&[0, 1, 2], &[0; 3], 10, "traffic on all three")
        .await;

    // A cannot reach the database for a while: what it answers waits in its spool.
    c.fwds[0].cut();
    eventually("events in A's spool", Duration::from_secs(20), async || {
        c.spool_depth(0).await.is_some_and(|d| d >= 10.0)
    })
    .await;
    let stream = stalled_stream(at[0], &key).await;
    let killed_at = Instant::now();
    c.gws[0].kill();
    drop(stream);
    let at_kill = traffic.counts();
    traffic
        .until_more(&[1, 2], &at_kill, 10, "B and C to serve on")
        .await;

    c.fwds[0].restore();
    tokio::task::block_in_place(|| c.gws[0].start());
    let ended = traffic.stop().await;
    assert!(ended[0].0.is_err(), "A's traffic must have met the kill");
    for (i, (end, _)) in ended.iter().enumerate().skip(1) {
        assert!(end.is_ok(), "instance {i}: {end:?}");
    }

    // Every request answered before A's last batch window is stored, A's spool
    // included; nothing is stored that was not answered (but for the one A may have
    // finished at the very moment of the kill), and nothing twice.
    let answered: Vec<(String, Instant)> = ended.into_iter().flat_map(|e| e.1).collect();
    let must: BTreeSet<String> = answered
        .iter()
        .filter(|(_, t)| *t + LAST_BATCH_WINDOW < killed_at || *t > killed_at)
        .map(|(id, _)| id.clone())
        .collect();
    let stored = eventually(
        "every request answered before the window stored",
        Duration::from_secs(30),
        async || {
            let stored: BTreeSet<String> = c.stored_ids().into_iter().collect();
            let missing = must.difference(&stored).count();
            (missing == 0)
                .then_some(stored)
                .ok_or(format!("{missing} missing"))
        },
    )
    .await;
    let all: BTreeSet<String> = ids(&answered).into_iter().collect();
    let unanswered: Vec<&String> = stored.difference(&all).collect();
    assert!(
        unanswered.len() <= 1,
        "stored, never answered: {unanswered:?}"
    );
    eventually("A's spool delivered", Duration::from_secs(20), async || {
        c.spool_depth(0).await == Some(0.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_s_database_outage_loses_and_doubles_no_event() {
    let c = Cluster::start().await;
    let key = c.key(&[]);
    let traffic = Traffic::start(&c.proxies(), &key, CHAT);
    let all = [0, 1, 2];
    traffic
        .until_more(&all, &[0; 3], 5, "the key cached on all three")
        .await;

    for f in &c.fwds {
        f.cut();
    }
    let (cut_at, at_cut) = (Instant::now(), traffic.counts());
    // 30 s without the database, answering all along (the traffic asserts 200s).
    eventually(
        "30 s of outage under traffic",
        Duration::from_secs(60),
        async || cut_at.elapsed() >= Duration::from_secs(30),
    )
    .await;
    traffic
        .until_more(&all, &at_cut, 100, "traffic during the outage")
        .await;
    for i in all {
        let depth = c.spool_depth(i).await.unwrap();
        assert!(depth > 0.0, "instance {i} spooled nothing: {depth}");
    }
    for f in &c.fwds {
        f.restore();
    }
    let at_restore = traffic.counts();
    traffic
        .until_more(&all, &at_restore, 5, "traffic after the outage")
        .await;
    let ended = traffic.stop().await;
    let mut answered = Vec::new();
    for (i, (end, log)) in ended.into_iter().enumerate() {
        assert!(end.is_ok(), "instance {i}: {end:?}");
        answered.extend(log);
    }

    let want = ids(&answered);
    eventually(
        "every answered request stored",
        Duration::from_secs(60),
        async || {
            let n = c.direct.usage_count().unwrap();
            assert!(
                n <= want.len() as u64,
                "{n} events for {} requests",
                want.len()
            );
            (n == want.len() as u64).then_some(()).ok_or(n)
        },
    )
    .await;
    assert_eq!(c.stored_ids(), want, "every answered request, exactly once");
    for i in all {
        eventually("an empty spool", Duration::from_secs(20), async || {
            c.spool_depth(i).await == Some(0.0)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_run_inflates_no_counter() {
    let mut c = Cluster::start().await;
    let budgeted = c.key(&["--budget-usd", "100", "--budget-period", "total"]);
    let poke = c.key(&["--rpm", "100000"]);
    let at = c.proxies();
    let all = [0, 1, 2];
    let traffic = Traffic::start(&at, &budgeted, O4_MINI);
    traffic
        .until_more(&all, &[0; 3], 3, "traffic on all three")
        .await;
    let counter = budget_counter(&c.redis).await;

    // Killed with requests in flight; they and the next ones are served all the same.
    c.redis.kill();
    traffic
        .until_more(&all, &traffic.counts(), 3, "traffic without Redis")
        .await;
    let ended = traffic.stop().await;
    let mut n = 0;
    for (i, (end, log)) in ended.iter().enumerate() {
        assert!(end.is_ok(), "instance {i}: {end:?}");
        n += log.len();
    }
    assert_eq!(c.stored_spend(&budgeted, n).await, n as i64 * COST);

    // Back, empty. The three find out, then race to rebuild the counter: it holds the
    // store's sum once (not once per instance, not added to what it held before).
    c.redis.restart();
    assert!(c.redis.keys("*").is_empty());
    for (i, addr) in at.iter().enumerate() {
        eventually("sharing again", Duration::from_secs(10), async || {
            assert_eq!(status(*addr, &poke).await, 200);
            c.degraded(i).await == Some(0.0)
        })
        .await;
    }
    assert_eq!(ok_count(&burst(&at, &budgeted, 6).await), 6);
    let spent = c.stored_spend(&budgeted, n + 6).await;
    assert_eq!(spent, (n as i64 + 6) * COST);
    wait_counter(&c.redis, &counter, spent).await;
}
