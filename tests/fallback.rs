//! Fallback chains (CONTRACT §3): connect errors, 429 and 5xx move to the next upstream
//! of the route while nothing has reached the client; other 4xx never do; the last
//! upstream's answer passes through unchanged. A 429 first tries the same upstream's
//! next key; a key told to retry after a while rests that long (capped); failing keys
//! and upstreams open their circuit, are skipped, and are probed again after the cool
//! down; an upstream failing its health checks is skipped until it passes. Both
//! transports (bodies under and over 64 KiB) follow the same rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mock::scripted::{Reply, Scripted};
use common::{chat_body, eventually, padded_chat, Gateway, GatewayBuilder, MockUpstream, Upstream};

/// A chat request for `gpt-4o-mini` whose one message is `filler` letters long.
fn chat(filler: usize) -> String {
    padded_chat("gpt-4o-mini", filler)
}

/// An upstream that answers every request with one fixed status and body, and
/// `retry-after: 7`.
async fn fixed_status(status: u16, body: &'static str) -> Scripted {
    Scripted::start(move |_| Reply::json(status, body).header("retry-after", "7")).await
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test]
async fn connect_errors_429_and_5xx_fall_back_other_4xx_do_not() {
    let good = MockUpstream::start().await;
    let busy = fixed_status(
        429,
        r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
    )
    .await;
    let broken = fixed_status(503, r#"{"error":{"message":"overloaded"}}"#).await;
    let picky = fixed_status(400, r#"{"error":{"message":"bad request from upstream"}}"#).await;
    // max_retry_after_s: 0, so that busy's "retry-after: 7" does not rest its key and
    // every request here walks the whole chain (resting is tested below).
    let up = |name: &str, at: &str| {
        Upstream::openai(name, at)
            .keys(&[&format!("sk-{name}")])
            .set("max_retry_after_s", 0)
    };
    let (gw, key) = GatewayBuilder::new()
        .upstream(up("dead", &closed_port()))
        .upstream(up("busy", &busy.base_url()))
        .upstream(up("broken", &broken.base_url()))
        .upstream(up("picky", &picky.base_url()))
        .upstream(up("good", &good.base_url()))
        .route(&["gpt-4o-mini"], &["dead", "busy", "broken", "good"])
        .route(&["picky-*"], &["picky", "good"])
        .route(&["last-*"], &["broken", "busy"])
        .user("root", "admin")
        .start_with_key("alice");

    for filler in [10, 100_000] {
        let before = (busy.hits(), broken.hits());
        let r = gw.chat(&key, chat(filler)).await;
        assert_eq!(r.status, 200, "filler {filler}: {}", r.text());
        let seen = good.last_request().unwrap();
        assert_eq!(
            seen.header("authorization"),
            Some("Bearer sk-good"),
            "the key of the upstream that served"
        );
        assert_eq!(
            seen.body,
            chat(filler).as_bytes(),
            "the body reached the last upstream whole"
        );
        assert!(r.body == seen.response_body);
        assert_eq!((busy.hits(), broken.hits()), (before.0 + 1, before.1 + 1));
    }

    // A 400 is the client's problem: it passes through and nothing else is tried.
    let served_before = good.request_count();
    let r = gw.chat(&key, r#"{"model":"picky-1","messages":[]}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "bad request from upstream");
    assert_eq!(picky.hits(), 1);
    assert_eq!(good.request_count(), served_before);

    // The chain exhausted: the last upstream's answer passes through unchanged.
    let r = gw.chat(&key, r#"{"model":"last-1","messages":[]}"#).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");

    // Every failed attempt is counted, and the usage event names the upstream that served.
    let m = gw.metrics().await;
    let failed = |upstream: &str, reason: &str| {
        let labels = [
            format!("upstream=\"{upstream}\""),
            format!("reason=\"{reason}\""),
        ];
        m.sum(
            "tollgate_upstream_attempts_failed_total",
            &[&labels[0], &labels[1]],
        )
    };
    assert_eq!(failed("dead", "connect_error"), 2.0, "{}", m.text());
    assert_eq!(failed("busy", "429"), 2.0);
    assert_eq!(failed("broken", "5xx"), 3.0);
    let admin = gw.create_key("root", &[]);
    let doc = gw.usage_after(&admin, "upstream", 4).await;
    let rows: Vec<(String, u64)> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap().to_owned(),
                r["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("busy".to_owned(), 1),
            ("good".to_owned(), 2),
            ("picky".to_owned(), 1)
        ]
    );
}

#[tokio::test]
async fn a_failing_upstream_opens_its_circuit_and_is_skipped() {
    let good = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("dead", &closed_port()))
        .upstream(Upstream::openai("good", &good))
        .route(&["*"], &["dead", "good"])
        .start_with_key("alice");
    for _ in 0..8 {
        assert_eq!(gw.chat(&key, chat(5)).await.status, 200);
    }
    // Five failures opened the circuit; the three requests after it went straight to good.
    let m = gw.metrics().await;
    let failures = m.sum(
        "tollgate_upstream_attempts_failed_total",
        &["reason=\"connect_error\"", "upstream=\"dead\""],
    );
    let open = m.sum(
        "tollgate_upstream_circuit_open{key=\"0\",upstream=\"dead\"}",
        &[],
    );
    assert_eq!((failures, open), (5.0, 1.0));
    assert_eq!(good.request_count(), 8);
}

#[tokio::test]
async fn a_429_tries_the_upstreams_next_key_before_anything_else() {
    // An upstream that rate-limits one key (429) and serves any other.
    let multi = Scripted::start(|req| {
        let hot = req
            .header("authorization")
            .is_some_and(|v| v.eq_ignore_ascii_case("bearer k-hot"));
        if hot {
            Reply::json(429, r#"{"error":{"message":"rate limited"}}"#)
        } else {
            Reply::json(
                200,
                r#"{"id":"chatcmpl-ok","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
            )
        }
    })
    .await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("multi", &multi).keys(&["k-hot", "k-cool"]))
        .start_with_key("alice");
    // Whichever key the rotation starts with, every request ends on the cool key.
    for filler in [5, 5, 5, 70_000, 70_000] {
        let r = gw.chat(&key, chat(filler)).await;
        assert_eq!(r.status, 200, "filler {filler}: {}", r.text());
        assert_eq!(r.json()["id"], "chatcmpl-ok");
    }
}

/// How many of the mock's requests carried each of `keys` (as a bearer token).
fn per_key(mock: &MockUpstream, keys: &[&str]) -> Vec<usize> {
    let reqs = mock.requests();
    keys.iter()
        .map(|k| {
            let want = format!("Bearer {k}");
            let carries = |r: &&common::mock::RecordedRequest| {
                r.header_all("authorization").contains(&want.as_str())
            };
            reqs.iter().filter(carries).count()
        })
        .collect()
}

#[tokio::test]
async fn a_key_told_to_retry_after_rests_that_long_capped() {
    let mock = MockUpstream::start().await;
    let hot = Upstream::openai("o", &mock)
        .keys(&["sk-hot", "sk-cool"])
        .set("max_retry_after_s", 4);
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(hot)
        .start_with_key("alice");
    // sk-hot answers 429 "retry-after: 30"; the cap (4 s, long enough for the six
    // requests below on a busy machine) bounds its rest.
    let body = chat_body("gpt-4o-error-429-for-key-hot-retry-after-30");
    let started = Instant::now();
    for _ in 0..6 {
        assert_eq!(gw.chat(&key, &body).await.status, 200);
    }
    // The rotation starts every other request at sk-hot; after its one 429 it rested.
    assert_eq!(per_key(&mock, &["sk-hot", "sk-cool"]), [1, 6]);
    assert!(started.elapsed() < Duration::from_secs(4));

    // Once the capped rest is over, sk-hot is tried again (and rests again).
    eventually(
        "sk-hot to be tried again",
        Duration::from_secs(15),
        async || {
            assert_eq!(gw.chat(&key, &body).await.status, 200);
            per_key(&mock, &["sk-hot"])[0] >= 2
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(3900),
        "tried again after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failing_key_opens_its_own_circuit_and_the_others_serve() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock).keys(&["sk-bad", "sk-good"]))
        .start_with_key("alice");
    let body = chat_body("gpt-4o-error-500-for-key-bad");
    let mut statuses = Vec::new();
    for _ in 0..16 {
        statuses.push(gw.chat(&key, &body).await.status);
    }
    // A 500 from the only upstream passes through; after five of them sk-bad's circuit
    // is open and every request goes to sk-good.
    assert_eq!(per_key(&mock, &["sk-bad", "sk-good"]), [5, 11]);
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 5);
    assert!(statuses[10..].iter().all(|s| *s == 200), "{statuses:?}");
    let m = gw.metrics().await;
    let (bad, good) = (
        "tollgate_upstream_circuit_open{key=\"0\",upstream=\"o\"} 1",
        "tollgate_upstream_circuit_open{key=\"1\",upstream=\"o\"} 1",
    );
    assert!(m.text().contains(bad), "{}", m.text());
    assert!(!m.text().contains(good), "{}", m.text());
}

/// A gateway routing every model to `[flaky, good]`: flaky a scripted upstream that
/// answers 503 while `healthy` is false and 200 (a chat completion) once it is true,
/// with `settings` under it; good a mock.
struct FlakyChain {
    _good: MockUpstream,
    flaky: Scripted,
    healthy: Arc<AtomicBool>,
    gw: Gateway,
    key: String,
}

impl FlakyChain {
    async fn start(settings: &[(&str, &str)]) -> FlakyChain {
        let good = MockUpstream::start().await;
        let healthy = Arc::new(AtomicBool::new(false));
        let state = healthy.clone();
        let flaky = Scripted::start(move |_| {
            if state.load(Ordering::SeqCst) {
                Reply::json(
                    200,
                    r#"{"id":"chatcmpl-flaky","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
                )
            } else {
                Reply::json(503, r#"{"error":{"message":"overloaded"}}"#)
            }
        })
        .await;
        let mut upstream = Upstream::openai("flaky", &flaky);
        for (k, v) in settings {
            upstream = upstream.set(k, v);
        }
        let (gw, key) = GatewayBuilder::new()
            .upstream(upstream)
            .upstream(Upstream::openai("good", &good))
            .route(&["*"], &["flaky", "good"])
            .start_with_key("alice");
        FlakyChain {
            _good: good,
            flaky,
            healthy,
            gw,
            key,
        }
    }

    /// How many chat requests reached flaky (health checks are GETs, not counted).
    fn posts(&self) -> usize {
        let posts = self
            .flaky
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST");
        posts.count()
    }

    /// A chat request; true when flaky served it (good answers otherwise).
    async fn served_by_flaky(&self) -> bool {
        let r = self.gw.chat(&self.key, chat(5)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["id"] == "chatcmpl-flaky"
    }

    /// The value of a gauge series of /metrics (`name{labels}`).
    async fn gauge(&self, series: &str) -> Option<f64> {
        self.gw.metrics().await.value(series)
    }
}

#[tokio::test]
async fn an_open_circuit_probes_after_its_cool_down_and_closes_on_success() {
    // A cool-down long enough that the requests and the gauge read below fall in it on a
    // busy machine.
    let c = FlakyChain::start(&[("circuit_cool_down_s", "3")]).await;
    let open = "tollgate_upstream_circuit_open{key=\"0\",upstream=\"flaky\"}";
    // Five 503s open flaky's circuit; good serves every request meanwhile.
    for _ in 0..7 {
        assert!(!c.served_by_flaky().await);
    }
    assert_eq!(c.posts(), 5);
    assert_eq!(c.gauge(open).await, Some(1.0));

    // Recovered: after the cool-down one request probes it, and success closes it.
    c.healthy.store(true, Ordering::SeqCst);
    eventually("flaky to be probed", Duration::from_secs(10), async || {
        c.served_by_flaky().await
    })
    .await;
    assert_eq!(c.gauge(open).await, Some(0.0));
    for _ in 0..3 {
        assert!(c.served_by_flaky().await, "first in the chain again");
    }
}

#[tokio::test]
async fn an_upstream_failing_its_health_check_is_skipped_until_it_passes() {
    let c = FlakyChain::start(&[(
        "health_check",
        "{ path: /v1/models, interval_s: 1, timeout_ms: 500 }",
    )])
    .await;
    let health = "tollgate_upstream_healthy{upstream=\"flaky\"}";
    let wait_health = |want: f64| {
        let c = &c;
        async move {
            let what = format!("flaky's health to become {want}");
            eventually(&what, Duration::from_secs(15), async || {
                let now = c.gauge(health).await;
                if now == Some(want) {
                    Ok(())
                } else {
                    Err(format!("{now:?}"))
                }
            })
            .await
        }
    };
    // Its checks get 503: down, and requests skip it without trying it at all.
    wait_health(0.0).await;
    for _ in 0..3 {
        assert!(!c.served_by_flaky().await);
    }
    assert_eq!(c.posts(), 0);
    // Recovered: one passing check puts it back first in the chain.
    c.healthy.store(true, Ordering::SeqCst);
    wait_health(1.0).await;
    assert!(c.served_by_flaky().await);
    assert!(c
        .gw
        .logs()
        .contains("upstream flaky: down after 2 failed health checks"));
}
