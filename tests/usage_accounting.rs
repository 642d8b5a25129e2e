//! Metering end to end: after a known mix of requests (every dialect, stream and not, a
//! stream cut mid-way, a client that leaves, refusals), the store, `GET /admin/usage`,
//! `tollgate usage --json` and `/metrics` show exactly the provider-reported tokens and
//! cost, one event per request, and no secret; the usage report is for admins only and
//! absent from the proxy listener; and SIGTERM during 50 streams loses no event.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::{stored_requests, usage_row as row};
use common::http::{request, request_streaming};
use common::wait::unix_now;
use common::{Gateway, Scenario};
use serde_json::Value;

/// Token buckets of the fixtures (tests/fixtures/README.md), as the providers report them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct T {
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
}

/// A [`T`] from its buckets in field order.
const fn tokens_of(
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
) -> T {
    T {
        input,
        cache_read,
        cache_write,
        output,
        reasoning,
    }
}

/// Prices in nano-dollars per token (USD per million × 1000), as configured below.
struct P {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
}

const PRICING: [(&str, &str); 3] = [
    ("o4-mini*", "{ input: 1.1, output: 4.4, cache_read: 0.275 }"),
    (
        "claude-sonnet-4*",
        "{ input: 3.0, output: 15.0, cache_read: 0.30, cache_write: 3.75 }",
    ),
    (
        "gemini-2.5-flash*",
        "{ input: 0.3, output: 2.5, cache_read: 0.075 }",
    ),
];
const O4: P = P {
    input: 1100,
    output: 4400,
    cache_read: 275,
    cache_write: 1100,
};
const SONNET: P = P {
    input: 3000,
    output: 15000,
    cache_read: 300,
    cache_write: 3750,
};
const FLASH: P = P {
    input: 300,
    output: 2500,
    cache_read: 75,
    cache_write: 300,
};

fn cost(t: T, p: &P) -> u64 {
    t.input * p.input
        + t.cache_read * p.cache_read
        + t.cache_write * p.cache_write
        + t.output * p.output
}

/// The three-dialect scenario with [`PRICING`], an admin `root` and this shutdown grace
/// (seconds); and a key of root.
async fn scenario(grace: u64) -> (Scenario, String) {
    let s = Scenario::start_with(|mut config| {
        for (pattern, prices) in PRICING {
            config = config.price(pattern, prices);
        }
        config
            .server("shutdown_grace_s", grace)
            .user("root", "admin")
    })
    .await;
    let admin = s.gw.create_key("root", &[]);
    (s, admin)
}

/// Waits (bounded) until the writer has stored `n` events, and no more.
async fn wait_for_events(gw: &Gateway, admin_key: &str, n: u64) -> Value {
    let doc = gw.usage_after(admin_key, "day", n).await;
    assert_eq!(stored_requests(&doc), n, "more events than requests");
    doc
}

fn tokens(r: &Value) -> T {
    let n = |k: &str| r[k].as_u64().unwrap();
    T {
        input: n("input_tokens"),
        cache_read: n("cache_read_tokens"),
        cache_write: n("cache_write_tokens"),
        output: n("output_tokens"),
        reasoning: n("reasoning_tokens"),
    }
}

/// A usage row's `cost_usd` in nano-dollars.
fn nanodollars(r: &Value) -> u64 {
    (r["cost_usd"].as_f64().unwrap() * 1e9).round() as u64
}

fn add(a: T, b: T) -> T {
    T {
        input: a.input + b.input,
        cache_read: a.cache_read + b.cache_read,
        cache_write: a.cache_write + b.cache_write,
        output: a.output + b.output,
        reasoning: a.reasoning + b.reasoning,
    }
}

#[tokio::test]
async fn a_known_mix_is_recorded_exactly_once_to_the_token_and_the_nanodollar() {
    let first_day = unix_now() / 86_400;
    let (s, admin) = scenario(1).await;
    let (gw, key) = (&s.gw, s.key.as_str());

    // Provider-reported counts, from the fixtures: input, cache read, cache write,
    // output, reasoning.
    let chat = tokens_of(93, 1024, 0, 246, 192);
    let chat_stream = tokens_of(53, 1152, 0, 138, 128);
    let responses_stream = tokens_of(37, 0, 0, 412, 384);
    let msg = tokens_of(21, 2048, 1536, 187, 0);
    let msg_stream = tokens_of(472, 1024, 0, 89, 0);
    let gen = tokens_of(13, 2048, 0, 376, 324);
    let gen_stream = tokens_of(283, 1024, 0, 250, 211);

    // Every dialect, stream and not.
    for (path, body) in [
        (
            "/v1/chat/completions",
            r#"{"model":"o4-mini","messages":[]}"#,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"o4-mini","messages":[],"stream":true}"#,
        ),
        (
            "/v1/responses",
            r#"{"model":"o4-mini","input":"x","stream":true}"#,
        ),
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"x"}"#,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"stream":true}"#,
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            r#"{"contents":[]}"#,
        ),
        (
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            r#"{"contents":[]}"#,
        ),
    ] {
        let r = gw.post(path, key, body).await;
        assert_eq!(r.status, 200, "{path} {body}");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("\"choices\":[],"),
            "the injected usage chunk reached the client"
        );
    }
    // A stream the upstream cuts mid-way: reported input kept, output estimated.
    let cut =
        r#"{"model":"claude-sonnet-4-5-cut-stream","max_tokens":9,"messages":[],"stream":true}"#;
    assert_eq!(gw.post("/v1/messages", key, cut).await.status, 200);
    // A client that leaves mid-stream.
    let bearer = format!("Bearer {key}");
    let slow =
        br#"{"model":"claude-sonnet-4-5-slow-stream","max_tokens":9,"messages":[],"stream":true}"#;
    let h = [("authorization", bearer.as_str())];
    let mut leaving = request_streaming(gw.proxy_addr, "POST", "/v1/messages", &h, slow).await;
    assert_eq!(leaving.status, 200);
    assert!(leaving.next_chunk().await.is_some());
    leaving.disconnect();
    s.anthropic
        .wait_until(
            Duration::from_secs(5),
            "the upstream sees the client leave",
            |r| r.iter().any(|r| r.peer_closed),
        )
        .await;
    // A key's refusals are recorded too (no tokens); a request without a key is counted
    // in the metrics instead, never stored.
    let unrouted = gw.chat(key, r#"{"model":"llama-3","messages":[]}"#).await;
    assert_eq!(unrouted.status, 404);
    let anonymous = request(gw.proxy_addr, "POST", "/v1/chat/completions", &[], b"{}").await;
    assert_eq!(anonymous.status, 401);

    let requests = 11;
    let by_day = wait_for_events(gw, &admin, requests).await;
    assert_eq!(by_day["by"], "day");
    let refused = gw
        .metrics()
        .await
        .value("tollgate_unauthenticated_refusals_total{reason=\"missing_key\"}");
    assert_eq!(refused, Some(1.0));

    let by_model = gw.admin_as(&admin).usage("model").await;
    let o4 = row(&by_model, "o4-mini");
    assert_eq!(o4["requests"], 3);
    assert_eq!(tokens(o4), add(add(chat, chat_stream), responses_stream));
    assert_eq!(o4["estimated_requests"], 0);
    let expect_o4 = cost(chat, &O4) + cost(chat_stream, &O4) + cost(responses_stream, &O4);
    assert_eq!(nanodollars(o4), expect_o4);

    let sonnet = row(&by_model, "claude-sonnet-4-5");
    assert_eq!(tokens(sonnet), add(msg, msg_stream));
    assert_eq!(
        nanodollars(sonnet),
        cost(msg, &SONNET) + cost(msg_stream, &SONNET)
    );
    let flash = row(&by_model, "gemini-2.5-flash");
    assert_eq!(tokens(flash), add(gen, gen_stream));
    assert_eq!(
        nanodollars(flash),
        cost(gen, &FLASH) + cost(gen_stream, &FLASH)
    );
    let embed = row(&by_model, "text-embedding-3-small");
    assert_eq!(
        tokens(embed),
        T {
            input: 8,
            ..T::default()
        }
    );
    assert_eq!(embed["cost_usd"], 0.0, "no price: cost 0");

    for partial in [
        "claude-sonnet-4-5-cut-stream",
        "claude-sonnet-4-5-slow-stream",
    ] {
        let r = row(&by_model, partial);
        assert_eq!(r["estimated_requests"], 1, "{partial}");
        assert_eq!(
            (r["input_tokens"].as_u64(), r["cache_read_tokens"].as_u64()),
            (Some(472), Some(1024)),
            "{partial}"
        );
        assert!(r["output_tokens"].as_u64().unwrap() >= 1, "{partial}");
    }
    assert_eq!(row(&by_model, "llama-3")["input_tokens"], 0);

    // The CLI prints the same document.
    let cli: Value =
        serde_json::from_str(&gw.cli_ok(&["usage", "--by", "model", "--json"])).unwrap();
    assert_eq!(cli, by_model);
    let by_key = gw.admin_as(&admin).usage("key").await;
    assert_eq!(row(&by_key, key.split('_').nth(1).unwrap())["requests"], 11);

    // Prometheus agrees, and no event was dropped.
    let m = gw.metrics().await;
    assert_eq!(m.sum("tollgate_usage_events_dropped_total", &[]), 0.0);
    // Every request is counted, the one without a key too.
    assert_eq!(m.sum("tollgate_requests_total", &[]), (requests + 1) as f64);
    assert_eq!(
        m.sum("tollgate_requests_total", &["status_class=\"2xx\""]),
        10.0
    );
    assert_eq!(
        m.sum("tollgate_requests_total", &["status_class=\"4xx\""]),
        2.0
    );
    assert_eq!(
        m.sum("tollgate_tokens_total", &["type=\"cache_write\""]),
        (msg.cache_write) as f64
    );
    assert_eq!(
        m.sum(
            "tollgate_tokens_total",
            &["model=\"o4-mini\"", "type=\"reasoning\""]
        ),
        (192 + 128 + 384) as f64
    );
    assert_eq!(m.sum("tollgate_unpriced_requests_total", &[]), 1.0);
    assert!(m
        .text()
        .contains("gen_ai_server_time_to_first_token_bucket"));
    assert_eq!(
        m.sum("tollgate_overhead_seconds_count", &[]),
        (requests + 1) as f64
    );
    assert_eq!(
        m.sum("tollgate_requests_in_flight", &[]),
        0.0,
        "{}",
        m.text()
            .lines()
            .filter(|l| l.contains("in_flight"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !m.text().contains(&key[16..]),
        "a key secret reached /metrics"
    );

    // Pruning by age: nothing is 1 day old yet; everything is older than the future.
    assert!(gw
        .cli_ok(&["usage", "prune", "--older-than", "1d"])
        .starts_with("deleted 0 usage events"));
    let by_day = wait_for_events(gw, &admin, requests).await;
    // One row a UTC day: one, unless the test ran across midnight.
    let days = (unix_now() / 86_400 - first_day + 1) as usize;
    let rows = by_day["rows"].as_array().unwrap().len();
    assert!((1..=days).contains(&rows), "{rows} rows in {days} days");
    for secret in [&key[16..], &admin[16..], "sk-o"] {
        assert!(!gw.logs().contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn admin_usage_needs_an_admin() {
    let (s, _admin) = scenario(1).await;
    let gw = &s.gw;
    let r = gw.admin_anonymous().get("/admin/usage").await;
    assert_eq!(r.status, 401);
    let r = gw.admin_as(&s.key).get("/admin/usage").await;
    assert_eq!(r.status, 403);
    let r = gw.get("/admin/usage", &s.key).await;
    assert_eq!(
        r.status, 404,
        "admin paths do not exist on the proxy listener"
    );
    let r = request(gw.proxy_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn sigterm_during_50_streams_loses_no_event() {
    let (mut s, _admin) = scenario(5).await;
    let addr = s.gw.proxy_addr;
    let mut clients = Vec::new();
    for i in 0..50 {
        let key = s.key.clone();
        clients.push(tokio::spawn(async move {
            let body = format!(r#"{{"model":"claude-sonnet-4-5-slow-stream","max_tokens":{i},"messages":[],"stream":true}}"#);
            request(addr, "POST", "/v1/messages", &[("x-api-key", key.as_str())], body.as_bytes()).await
        }));
    }
    s.anthropic
        .wait_for_requests(50, Duration::from_secs(10))
        .await;
    s.gw.terminate();
    for c in clients {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete, "a stream was cut by the shutdown");
    }
    let status = s.gw.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    let stored: Value =
        serde_json::from_str(&s.gw.cli_ok(&["usage", "--by", "model", "--json"])).unwrap();
    let r = row(&stored, "claude-sonnet-4-5-slow-stream");
    assert_eq!(r["requests"], 50);
    assert_eq!(r["estimated_requests"], 0);
    assert_eq!(r["output_tokens"], 50 * 89);
}
