//! Three gateways counting limits together in one Redis (`limits.redis_url`): the real
//! `tollgate serve` three times on one store (one SQLite file in one directory, as the
//! kit's `Gateway::another` runs a second process on it) and a private redis-server.
//! An RPM limit admits exactly its number across the three; concurrent requests spread
//! over them overrun a small budget by at most the requests in flight; a Redis restart
//! inflates no counter (the budget counter is rebuilt once from the store, whichever
//! gateway comes first); Redis down: requests are still served, each gateway enforces
//! limits alone and says so on /metrics and once in its log. Over TLS (`rediss://`) the
//! server's certificate is checked: against `limits.redis_ca`, or the machine's trust
//! store, which does not know the test CA.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::limits::{
    budget_counter, burst, ok_count, server_minute, wait_counter, COST, O4_MINI_PRICE,
};
use common::redis::TestRedis;
use common::wait::unix_now;
use common::{eventually, Gateway, Scenario};
use tollgate::limits::CALL_TIMEOUT;

const DEGRADED: &str = "tollgate_shared_limits_degraded";

/// Three gateways on one store and `redis`; the scenario's first gateway is `s.gw`.
async fn three(redis: &TestRedis, keys: &[&[&str]]) -> (Scenario, Vec<Gateway>, Vec<String>) {
    let url = redis.url();
    let s = Scenario::start_with(|c| {
        c.limits("redis_url", format!("\"{url}\""))
            .price("o4-mini*", O4_MINI_PRICE)
            .user("root", "admin")
    })
    .await;
    // Created before the other two start, so that all three know them from the start.
    let keys = keys.iter().map(|k| s.gw.create_key("alice", k)).collect();
    let mut others = Vec::new();
    for _ in 0..2 {
        let mut g = s.gw.another();
        g.start();
        others.push(g);
    }
    (s, others, keys)
}

fn proxies(s: &Scenario, others: &[Gateway]) -> Vec<SocketAddr> {
    std::iter::once(&s.gw)
        .chain(others)
        .map(|g| g.proxy_addr)
        .collect()
}

async fn degraded(g: &Gateway) -> Option<f64> {
    g.metrics().await.value(DEGRADED)
}

#[tokio::test]
async fn an_rpm_limit_admits_exactly_its_number_across_three_gateways() {
    let r = TestRedis::start();
    let (s, others, keys) = three(&r, &[&["--rpm", "5"], &["--rpm", "5"], &["--rpm", "5"]]).await;
    let at = proxies(&s, &others);
    // A burst that crosses the server's minute gets two windows: then the next key.
    let mut checked = false;
    for key in &keys {
        let minute = server_minute(&r);
        let statuses = burst(&at, key, 15).await;
        if server_minute(&r) == minute {
            assert_eq!(ok_count(&statuses), 5, "{statuses:?}");
            checked = true;
            break;
        }
    }
    assert!(checked, "three bursts each crossed a minute");
    for g in std::iter::once(&s.gw).chain(&others) {
        assert_eq!(degraded(g).await, Some(0.0));
    }
}

#[tokio::test]
async fn concurrent_requests_over_three_gateways_overrun_a_budget_by_at_most_those_in_flight() {
    let r = TestRedis::start();
    let budget = 4_000_000; // $0.004: one after another, 3 requests get through
    let (s, others, keys) = three(
        &r,
        &[&["--budget-usd", "0.004", "--budget-period", "total"]],
    )
    .await;
    let at = proxies(&s, &others);
    let in_flight = 6;
    let mut admitted = 0;
    for _ in 0..5 {
        admitted += ok_count(&burst(&at, &keys[0], in_flight).await);
        let counter = budget_counter(&r).await;
        wait_counter(&r, &counter, admitted * COST).await;
    }
    assert!(
        admitted >= 3,
        "refused before the budget was spent: {admitted}"
    );
    let in_flight = i64::try_from(in_flight).unwrap();
    assert!(
        admitted * COST < budget + in_flight * COST,
        "{admitted} admitted: more than the budget plus the requests in flight"
    );
    // Spent up: every gateway refuses now.
    for addr in &at {
        assert_eq!(burst(&[*addr], &keys[0], 1).await, [429]);
    }
}

#[tokio::test]
async fn a_redis_restart_inflates_no_counter() {
    let mut r = TestRedis::start();
    let (s, others, keys) = three(
        &r,
        &[
            &["--budget-usd", "100", "--budget-period", "total"],
            &["--rpm", "100000"],
        ],
    )
    .await;
    let (budgeted, poke) = (&keys[0], &keys[1]);
    let at = proxies(&s, &others);
    let admin = s.gw.create_key("root", &[]);
    assert_eq!(ok_count(&burst(&at, budgeted, 9).await), 9);
    let counter = budget_counter(&r).await;
    wait_counter(&r, &counter, 9 * COST).await;
    s.gw.usage_after(&admin, "day", 9).await;

    r.kill();
    r.restart();
    assert!(r.keys("*").is_empty());
    // Each gateway finds out on its next call and counts alone until its probe gets an
    // answer: requests of another key (no budget) until all three share again.
    let gateways: Vec<&Gateway> = std::iter::once(&s.gw).chain(&others).collect();
    for (g, addr) in gateways.iter().zip(&at) {
        eventually("sharing again", Duration::from_secs(10), async || {
            assert_eq!(burst(&[*addr], poke, 1).await, [200]);
            degraded(g).await == Some(0.0)
        })
        .await;
    }
    // The three race to rebuild the lost counter: it holds the store's sum once (not
    // once per gateway, not added to the counts of before), then counts on.
    assert_eq!(ok_count(&burst(&at, budgeted, 3).await), 3);
    wait_counter(&r, &counter, 12 * COST).await;
    assert_eq!(ok_count(&burst(&at, budgeted, 6).await), 6);
    wait_counter(&r, &counter, 18 * COST).await;
}

#[tokio::test]
async fn with_redis_down_requests_are_served_and_each_gateway_enforces_limits_alone() {
    let mut r = TestRedis::start();
    let (s, others, keys) = three(&r, &[&["--rpm", "2"], &["--rpm", "2"], &["--rpm", "2"]]).await;
    let at = proxies(&s, &others);
    r.kill();
    // Each gateway alone admits the key's 2 per minute (of its own clock), refuses the
    // third; a burst that crosses a minute is retried with the next key.
    let mut checked = false;
    for key in &keys {
        let minute = unix_now() / 60;
        let mut per_gateway = Vec::new();
        for addr in &at {
            let mut statuses = Vec::new();
            for _ in 0..3 {
                statuses.extend(burst(&[*addr], key, 1).await);
            }
            per_gateway.push(statuses);
        }
        if unix_now() / 60 == minute {
            for statuses in &per_gateway {
                assert_eq!(statuses, &[200, 200, 429], "{per_gateway:?}");
            }
            checked = true;
            break;
        }
    }
    assert!(checked, "three rounds each crossed a minute");
    let gateways: Vec<&Gateway> = std::iter::once(&s.gw).chain(&others).collect();
    for g in &gateways {
        assert_eq!(degraded(g).await, Some(1.0));
        let logged = g.logs().matches("unreachable").count();
        assert_eq!(logged, 1, "one log line, not one per request: {}", g.logs());
    }
    // A gateway started while Redis is down starts, serves and says so.
    let mut late = s.gw.another();
    late.start();
    assert_eq!(burst(&[late.proxy_addr], &s.key, 1).await, [200]);
    eventually(
        "the late gateway to report Redis",
        Duration::from_secs(5),
        async || degraded(&late).await == Some(1.0),
    )
    .await;
    assert!(late.wait_for_log("unreachable", Duration::from_secs(1)));
    // Redis back: shared again, with nothing counted alone replayed into it.
    r.restart();
    for g in &gateways {
        eventually("sharing again", Duration::from_secs(10), async || {
            degraded(g).await == Some(0.0)
        })
        .await;
        assert!(g.wait_for_log("answers again", Duration::from_secs(1)));
    }
    assert!(r.keys("tollgate:*").is_empty(), "{:?}", r.keys("*"));
}

#[tokio::test]
async fn a_hung_redis_costs_a_request_a_short_wait_once_not_an_answer() {
    let r = TestRedis::start();
    let (s, others, keys) = three(&r, &[&["--rpm", "1000"]]).await;
    assert_eq!(burst(&[s.gw.proxy_addr], &keys[0], 1).await, [200]);
    r.pause(true);
    let started = std::time::Instant::now();
    assert_eq!(burst(&[s.gw.proxy_addr], &keys[0], 1).await, [200]);
    let first = started.elapsed();
    assert!(
        (CALL_TIMEOUT..Duration::from_secs(2)).contains(&first),
        "{first:?}"
    );
    // Counting alone now: the next ones do not wait on Redis at all. Five one after
    // another that each waited would take five timeouts.
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(burst(&[s.gw.proxy_addr], &keys[0], 1).await, [200]);
    }
    let next = started.elapsed();
    assert!(next < 5 * CALL_TIMEOUT, "{next:?}");
    assert_eq!(degraded(&s.gw).await, Some(1.0));
    assert_eq!(degraded(&others[0]).await, Some(0.0), "no call yet");
    r.pause(false);
    eventually("sharing again", Duration::from_secs(10), async || {
        degraded(&s.gw).await == Some(0.0)
    })
    .await;
    assert_eq!(burst(&[s.gw.proxy_addr], &keys[0], 1).await, [200]);
}

#[tokio::test]
async fn counters_are_shared_over_tls_when_the_servers_certificate_checks_out() {
    let r = TestRedis::start_tls();
    let (url, ca) = (r.url(), TestRedis::ca());
    let s = Scenario::start_with(|c| {
        c.limits("redis_url", format!("\"{url}\""))
            .limits("redis_ca", format!("\"{ca}\""))
            .price("o4-mini*", O4_MINI_PRICE)
            .user("root", "admin")
    })
    .await;
    let key = s.gw.create_key(
        "alice",
        &["--budget-usd", "100", "--budget-period", "total"],
    );
    assert_eq!(ok_count(&burst(&[s.gw.proxy_addr], &key, 3).await), 3);
    // The spend is counted in Redis, reached over TLS.
    let counter = budget_counter(&r).await;
    wait_counter(&r, &counter, 3 * COST).await;
    assert_eq!(degraded(&s.gw).await, Some(0.0));

    // Without the CA, the machine's trust store does not know the server's certificate:
    // refused, so this gateway serves and counts alone, and says so.
    let s2 = Scenario::start_with(|c| {
        c.limits("redis_url", format!("\"{url}\""))
            .price("o4-mini*", O4_MINI_PRICE)
            .user("root", "admin")
    })
    .await;
    let key2 = s2.gw.create_key(
        "alice",
        &["--budget-usd", "100", "--budget-period", "total"],
    );
    assert_eq!(ok_count(&burst(&[s2.gw.proxy_addr], &key2, 2).await), 2);
    eventually("degraded", Duration::from_secs(10), async || {
        let d = degraded(&s2.gw).await;
        (d == Some(1.0)).then_some(()).ok_or(format!("{d:?}"))
    })
    .await;
    // Nothing of it reached Redis: the one budget counter there is the first gateway's.
    assert_eq!(r.keys("tollgate:budget:key:*"), [counter]);
}
