//! Fallback chains (CONTRACT §3): connect errors, 429 and 5xx move to the next upstream
//! of the route while nothing has reached the client; other 4xx never do; the last
//! upstream's answer passes through unchanged. Both transports (bodies under and over
//! 64 KiB) follow the same rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::gateway::GatewayBuilder;
use common::http::request;
use common::mock_upstream::MockUpstream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads one HTTP/1.1 request (head and Content-Length body); `None` if the peer left.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let mut total = None;
    loop {
        if let Some(t) = total {
            if buf.len() >= t {
                return Some(buf);
            }
        }
        let n = sock.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if total.is_none() {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let cl = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse::<usize>().unwrap())
                    .unwrap_or(0);
                total = Some(end + 4 + cl);
            }
        }
    }
}

/// An upstream that answers every request with one fixed status and body, counting hits.
async fn fixed_status(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                if read_request(&mut sock).await.is_none() {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 7\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, hits)
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

fn chat(filler: usize) -> Vec<u8> {
    format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "a".repeat(filler)
    )
    .into_bytes()
}

#[tokio::test]
async fn connect_errors_429_and_5xx_fall_back_other_4xx_do_not() {
    let good = MockUpstream::start().await;
    let (busy, busy_hits) = fixed_status(
        429,
        r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#,
    )
    .await;
    let (broken, broken_hits) = fixed_status(503, r#"{"error":{"message":"overloaded"}}"#).await;
    let (picky, picky_hits) =
        fixed_status(400, r#"{"error":{"message":"bad request from upstream"}}"#).await;
    // max_retry_after_s: 0, so that busy's "retry-after: 7" does not rest its key and
    // every request here walks the whole chain (resting is tested below).
    let up = |name: &str, url: &str| {
        format!("  - name: {name}\n    kind: openai\n    base_url: \"{url}\"\n    keys: [\"sk-{name}\"]\n    max_retry_after_s: 0\n")
    };
    let ups = up("dead", &closed_port())
        + &up("busy", &busy)
        + &up("broken", &broken)
        + &up("picky", &picky)
        + &up("good", &good.base_url());
    let routes = concat!(
        "  - models: [\"gpt-4o-mini\"]\n    upstreams: [dead, busy, broken, good]\n",
        "  - models: [\"picky-*\"]\n    upstreams: [picky, good]\n",
        "  - models: [\"last-*\"]\n    upstreams: [broken, busy]\n",
    );
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes.into())
        .user("root", "admin")
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str())];

    for filler in [10, 100_000] {
        let before = (
            busy_hits.load(Ordering::SeqCst),
            broken_hits.load(Ordering::SeqCst),
        );
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &h,
            &chat(filler),
        )
        .await;
        assert_eq!(r.status, 200, "filler {filler}: {}", r.text());
        let seen = good.requests().pop().unwrap();
        assert_eq!(
            seen.header("authorization"),
            Some("Bearer sk-good"),
            "the key of the upstream that served"
        );
        assert_eq!(
            seen.body,
            chat(filler),
            "the body reached the last upstream whole"
        );
        assert!(r.body == seen.response_body);
        assert_eq!(
            (
                busy_hits.load(Ordering::SeqCst),
                broken_hits.load(Ordering::SeqCst)
            ),
            (before.0 + 1, before.1 + 1)
        );
    }

    // A 400 is the client's problem: it passes through and nothing else is tried.
    let served_before = good.requests().len();
    let body = br#"{"model":"picky-1","messages":[]}"#;
    let r = request(gw.proxy_addr, "POST", "/v1/chat/completions", &h, body).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["message"], "bad request from upstream");
    assert_eq!(picky_hits.load(Ordering::SeqCst), 1);
    assert_eq!(good.requests().len(), served_before);

    // The chain exhausted: the last upstream's answer passes through unchanged.
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &h,
        br#"{"model":"last-1","messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");

    // Every failed attempt is counted, and the usage event names the upstream that served.
    let m = request(gw.admin_addr, "GET", "/metrics", &[], b"")
        .await
        .text();
    let failed = |upstream: &str, reason: &str| {
        m.lines()
            .filter(|l| {
                l.starts_with("tollgate_upstream_attempts_failed_total")
                    && l.contains(&format!("upstream=\"{upstream}\""))
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(failed("dead", "connect_error"), 2.0, "{m}");
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
    let ups = format!(
        "  - name: dead\n    kind: openai\n    base_url: \"{}\"\n  - name: good\n    kind: openai\n    base_url: \"{}\"\n",
        closed_port(),
        good.base_url()
    );
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml("  - models: [\"*\"]\n    upstreams: [dead, good]\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    let metrics = || async {
        let m = request(gw.admin_addr, "GET", "/metrics", &[], b"")
            .await
            .text();
        let value = |prefix: &str| {
            m.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        };
        (
            value("tollgate_upstream_attempts_failed_total{reason=\"connect_error\",upstream=\"dead\"}")
                + value("tollgate_upstream_attempts_failed_total{upstream=\"dead\",reason=\"connect_error\"}"),
            value("tollgate_upstream_circuit_open{key=\"0\",upstream=\"dead\"}"),
        )
    };
    for _ in 0..8 {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &chat(5),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    // Five failures opened the circuit; the three requests after it went straight to good.
    assert_eq!(metrics().await, (5.0, 1.0));
    assert_eq!(good.requests().len(), 8);
}

/// An upstream that rate-limits one key (429) and serves any other.
async fn limits_key(bad: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Some(buf) = read_request(&mut sock).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let (status, body) = if head.contains(&format!("authorization: bearer {bad}")) {
                    (429, r#"{"error":{"message":"rate limited"}}"#)
                } else {
                    (
                        200,
                        r#"{"id":"chatcmpl-ok","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
                    )
                };
                let out = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(out.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_429_tries_the_upstreams_next_key_before_anything_else() {
    let url = limits_key("k-hot").await;
    let ups = format!("  - name: multi\n    kind: openai\n    base_url: \"{url}\"\n    keys: [\"k-hot\", \"k-cool\"]\n");
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml("  - models: [\"*\"]\n    upstreams: [multi]\n".into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    // Whichever key the rotation starts with, every request ends on the cool key.
    for filler in [5, 5, 5, 70_000, 70_000] {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &chat(filler),
        )
        .await;
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
            reqs.iter()
                .filter(|r| {
                    r.headers
                        .iter()
                        .any(|(n, v)| n == "authorization" && *v == want)
                })
                .count()
        })
        .collect()
}

fn chat_for(model: &str) -> Vec<u8> {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#).into_bytes()
}

/// A gateway whose one upstream `o` (OpenAI, on `mock`, with `extra` YAML under it)
/// serves every model, and the bearer header of a key of alice.
fn only_upstream(mock: &MockUpstream, extra: &str) -> (common::gateway::Gateway, String) {
    let gw = GatewayBuilder::new()
        .only_openai_upstream(&mock.base_url(), extra)
        .start_with_user("alice");
    let auth = format!("Bearer {}", gw.create_key("alice", &[]));
    (gw, auth)
}

#[tokio::test]
async fn a_key_told_to_retry_after_rests_that_long_capped() {
    let mock = MockUpstream::start().await;
    let (gw, auth) = only_upstream(
        &mock,
        "    keys: [\"sk-hot\", \"sk-cool\"]\n    max_retry_after_s: 2\n",
    );
    // sk-hot answers 429 "retry-after: 30"; the cap (2 s) bounds its rest.
    let body = chat_for("gpt-4o-error-429-for-key-hot-retry-after-30");
    let send = || async {
        request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &body,
        )
        .await
    };
    let started = std::time::Instant::now();
    for _ in 0..6 {
        assert_eq!(send().await.status, 200);
    }
    // The rotation starts every other request at sk-hot; after its one 429 it rested.
    assert_eq!(per_key(&mock, &["sk-hot", "sk-cool"]), [1, 6]);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));

    // Once the capped rest is over, sk-hot is tried again (and rests again).
    let deadline = started + std::time::Duration::from_secs(15);
    while per_key(&mock, &["sk-hot"])[0] < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "sk-hot never tried again"
        );
        assert_eq!(send().await.status, 200);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1900),
        "tried again after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_failing_key_opens_its_own_circuit_and_the_others_serve() {
    let mock = MockUpstream::start().await;
    let (gw, auth) = only_upstream(&mock, "    keys: [\"sk-bad\", \"sk-good\"]\n");
    let body = chat_for("gpt-4o-error-500-for-key-bad");
    let mut statuses = Vec::new();
    for _ in 0..16 {
        let r = request(
            gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &body,
        )
        .await;
        statuses.push(r.status);
    }
    // A 500 from the only upstream passes through; after five of them sk-bad's circuit
    // is open and every request goes to sk-good.
    assert_eq!(per_key(&mock, &["sk-bad", "sk-good"]), [5, 11]);
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 5);
    assert!(statuses[10..].iter().all(|s| *s == 200), "{statuses:?}");
    let m = request(gw.admin_addr, "GET", "/metrics", &[], b"")
        .await
        .text();
    assert!(
        m.contains("tollgate_upstream_circuit_open{key=\"0\",upstream=\"o\"} 1"),
        "{m}"
    );
    assert!(
        !m.contains("tollgate_upstream_circuit_open{key=\"1\",upstream=\"o\"} 1"),
        "{m}"
    );
}

/// An upstream that answers 503 while `healthy` is false and 200 (a chat completion)
/// once it is true, counting hits (POSTs only: health checks are GETs).
async fn switchable() -> (String, Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (counter, state) = (hits.clone(), healthy.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (counter, state) = (counter.clone(), state.clone());
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                if req.starts_with(b"POST ") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let (status, body) = if state.load(Ordering::SeqCst) {
                    (
                        200,
                        r#"{"id":"chatcmpl-flaky","object":"chat.completion","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
                    )
                } else {
                    (503, r#"{"error":{"message":"overloaded"}}"#)
                };
                let out = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(out.as_bytes()).await;
            });
        }
    });
    (url, hits, healthy)
}

/// A gateway routing every model to `[flaky, good]`: flaky a [`switchable`] upstream
/// (starting unhealthy) with `flaky_extra` YAML under it, good a mock.
struct FlakyChain {
    _good: MockUpstream,
    posts: Arc<AtomicUsize>,
    healthy: Arc<std::sync::atomic::AtomicBool>,
    gw: common::gateway::Gateway,
    auth: String,
}

impl FlakyChain {
    async fn start(flaky_extra: &str) -> FlakyChain {
        let good = MockUpstream::start().await;
        let (flaky, posts, healthy) = switchable().await;
        let ups = format!(
            "  - name: flaky\n    kind: openai\n    base_url: \"{flaky}\"\n{flaky_extra}  - name: good\n    kind: openai\n    base_url: \"{}\"\n",
            good.base_url()
        );
        let gw = GatewayBuilder::new()
            .upstreams_yaml(ups)
            .routes_yaml("  - models: [\"*\"]\n    upstreams: [flaky, good]\n".into())
            .start_with_user("alice");
        let auth = format!("Bearer {}", gw.create_key("alice", &[]));
        FlakyChain {
            _good: good,
            posts,
            healthy,
            gw,
            auth,
        }
    }

    /// A chat request; true when flaky served it (good answers otherwise).
    async fn served_by_flaky(&self) -> bool {
        let r = request(
            self.gw.proxy_addr,
            "POST",
            "/v1/chat/completions",
            &[("authorization", &self.auth)],
            &chat(5),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["id"] == "chatcmpl-flaky"
    }

    /// The value of a gauge series of /metrics (`name{labels}`).
    async fn gauge(&self, series: &str) -> Option<i64> {
        let m = request(self.gw.admin_addr, "GET", "/metrics", &[], b"")
            .await
            .text();
        m.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
    }
}

#[tokio::test]
async fn an_open_circuit_probes_after_its_cool_down_and_closes_on_success() {
    let c = FlakyChain::start("    circuit_cool_down_s: 1\n").await;
    let open = "tollgate_upstream_circuit_open{key=\"0\",upstream=\"flaky\"}";
    // Five 503s open flaky's circuit; good serves every request meanwhile.
    for _ in 0..7 {
        assert!(!c.served_by_flaky().await);
    }
    assert_eq!(c.posts.load(Ordering::SeqCst), 5);
    assert_eq!(c.gauge(open).await, Some(1));

    // Recovered: after the cool-down one request probes it, and success closes it.
    c.healthy.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !c.served_by_flaky().await {
        assert!(
            std::time::Instant::now() < deadline,
            "flaky was never probed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(c.gauge(open).await, Some(0));
    for _ in 0..3 {
        assert!(c.served_by_flaky().await, "first in the chain again");
    }
}

#[tokio::test]
async fn an_upstream_failing_its_health_check_is_skipped_until_it_passes() {
    let c = FlakyChain::start(
        "    health_check: { path: /v1/models, interval_s: 1, timeout_ms: 500 }\n",
    )
    .await;
    let wait_health = |want: i64| {
        let c = &c;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            loop {
                let now = c
                    .gauge("tollgate_upstream_healthy{upstream=\"flaky\"}")
                    .await;
                if now == Some(want) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "flaky's health never became {want}: {now:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    // Its checks get 503: down, and requests skip it without trying it at all.
    wait_health(0).await;
    for _ in 0..3 {
        assert!(!c.served_by_flaky().await);
    }
    assert_eq!(c.posts.load(Ordering::SeqCst), 0);
    // Recovered: one passing check puts it back first in the chain.
    c.healthy.store(true, Ordering::SeqCst);
    wait_health(1).await;
    assert!(c.served_by_flaky().await);
    assert!(c
        .gw
        .logs()
        .contains("upstream flaky: down after 2 failed health checks"));
}
