//! Metering end to end: after a known mix of requests (every dialect, stream and not, a
//! stream cut mid-way, a client that leaves), the store, `GET /admin/usage`,
//! `tollgate usage --json` and `/metrics` show exactly the provider-reported tokens and
//! cost, one event per request. And SIGTERM during 50 streams loses none.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::gateway::{Gateway, GatewayBuilder};
use common::http::{request, request_streaming};
use common::mock_upstream::MockUpstream;
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

/// Prices in nano-dollars per token (USD per million × 1000), as configured below.
struct P {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
}

const PRICING: &str = "  \"o4-mini*\": { input: 1.1, output: 4.4, cache_read: 0.275 }\n  \"claude-sonnet-4*\": { input: 3.0, output: 15.0, cache_read: 0.30, cache_write: 3.75 }\n  \"gemini-2.5-flash*\": { input: 0.3, output: 2.5, cache_read: 0.075 }\n";
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

fn gateway(
    o: &MockUpstream,
    a: &MockUpstream,
    g: &MockUpstream,
    grace: u64,
) -> (Gateway, String, String) {
    let ups = format!(
        "  - name: oa\n    kind: openai\n    base_url: \"{}\"\n    keys: [\"sk-o\"]\n  - name: an\n    kind: anthropic\n    base_url: \"{}\"\n  - name: ge\n    kind: gemini\n    base_url: \"{}\"\n",
        o.base_url(),
        a.base_url(),
        g.base_url()
    );
    let routes = "  - models: [\"claude-*\"]\n    upstreams: [an]\n  - models: [\"gemini-*\"]\n    upstreams: [ge]\n  - models: [\"o4-*\", \"text-embedding-*\"]\n    upstreams: [oa]\n";
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes.into())
        .pricing_yaml(PRICING.into())
        .server_extra(format!("  shutdown_grace_s: {grace}\n"))
        .user("root", "admin")
        .start_with_user("alice");
    let member = gw.create_key("alice", &[]);
    let admin = gw.create_key("root", &[]);
    (gw, member, admin)
}

async fn admin_usage(gw: &Gateway, admin_key: &str, by: &str) -> Value {
    let auth = format!("Bearer {admin_key}");
    let r = request(
        gw.admin_addr,
        "GET",
        &format!("/admin/usage?by={by}"),
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits (bounded) until the writer has stored `n` events, and no more.
async fn wait_for_events(gw: &Gateway, admin_key: &str, n: u64) -> Value {
    let doc = gw.usage_after(admin_key, "day", n).await;
    let stored: u64 = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(stored, n, "more events than requests");
    doc
}

fn row<'a>(doc: &'a Value, group: &str) -> &'a Value {
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"] == group)
        .unwrap_or_else(|| panic!("no row {group} in {doc}"))
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

fn add(a: T, b: T) -> T {
    T {
        input: a.input + b.input,
        cache_read: a.cache_read + b.cache_read,
        cache_write: a.cache_write + b.cache_write,
        output: a.output + b.output,
        reasoning: a.reasoning + b.reasoning,
    }
}

fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_known_mix_is_recorded_exactly_once_to_the_token_and_the_nanodollar() {
    let (o, a, g) = (
        MockUpstream::start().await,
        MockUpstream::start().await,
        MockUpstream::start().await,
    );
    let (gw, key, admin) = gateway(&o, &a, &g, 1);
    let bearer = format!("Bearer {key}");
    let h = [("authorization", bearer.as_str())];
    let post = |path: &'static str, body: &'static str| {
        let addr = gw.proxy_addr;
        async move { request(addr, "POST", path, &h, body.as_bytes()).await }
    };

    // Provider-reported counts, from the fixtures.
    let chat = T {
        input: 93,
        cache_read: 1024,
        cache_write: 0,
        output: 246,
        reasoning: 192,
    };
    let chat_stream = T {
        input: 53,
        cache_read: 1152,
        cache_write: 0,
        output: 138,
        reasoning: 128,
    };
    let responses_stream = T {
        input: 37,
        cache_read: 0,
        cache_write: 0,
        output: 412,
        reasoning: 384,
    };
    let msg = T {
        input: 21,
        cache_read: 2048,
        cache_write: 1536,
        output: 187,
        reasoning: 0,
    };
    let msg_stream = T {
        input: 472,
        cache_read: 1024,
        cache_write: 0,
        output: 89,
        reasoning: 0,
    };
    let gen = T {
        input: 13,
        cache_read: 2048,
        cache_write: 0,
        output: 376,
        reasoning: 324,
    };
    let gen_stream = T {
        input: 283,
        cache_read: 1024,
        cache_write: 0,
        output: 250,
        reasoning: 211,
    };

    assert_eq!(
        post(
            "/v1/chat/completions",
            r#"{"model":"o4-mini","messages":[]}"#
        )
        .await
        .status,
        200
    );
    let r = post(
        "/v1/chat/completions",
        r#"{"model":"o4-mini","messages":[],"stream":true}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        !String::from_utf8_lossy(&r.body).contains("\"choices\":[],"),
        "the injected usage chunk reached the client"
    );
    assert_eq!(
        post(
            "/v1/responses",
            r#"{"model":"o4-mini","input":"x","stream":true}"#
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"x"}"#
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"stream":true}"#
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            r#"{"contents":[]}"#
        )
        .await
        .status,
        200
    );
    assert_eq!(
        post(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            r#"{"contents":[]}"#
        )
        .await
        .status,
        200
    );
    // A stream the upstream cuts mid-way: reported input kept, output estimated.
    let cut = post(
        "/v1/messages",
        r#"{"model":"claude-sonnet-4-5-cut-stream","max_tokens":9,"messages":[],"stream":true}"#,
    )
    .await;
    assert_eq!(cut.status, 200);
    // A client that leaves mid-stream.
    let mut s = request_streaming(
        gw.proxy_addr,
        "POST",
        "/v1/messages",
        &h,
        br#"{"model":"claude-sonnet-4-5-slow-stream","max_tokens":9,"messages":[],"stream":true}"#,
    )
    .await;
    assert_eq!(s.status, 200);
    assert!(s.next_chunk().await.is_some());
    s.disconnect();
    a.wait_until(
        Duration::from_secs(5),
        "the upstream sees the client leave",
        |r| r.iter().any(|r| r.peer_closed),
    )
    .await;
    // Refusals are recorded too (no tokens).
    assert_eq!(
        post(
            "/v1/chat/completions",
            r#"{"model":"llama-3","messages":[]}"#
        )
        .await
        .status,
        404
    );
    assert_eq!(
        request(gw.proxy_addr, "POST", "/v1/chat/completions", &[], b"{}")
            .await
            .status,
        401
    );

    let requests = 12;
    let by_day = wait_for_events(&gw, &admin, requests).await;
    assert_eq!(by_day["by"], "day");

    let by_model = admin_usage(&gw, &admin, "model").await;
    let o4 = row(&by_model, "o4-mini");
    assert_eq!(o4["requests"], 3);
    assert_eq!(tokens(o4), add(add(chat, chat_stream), responses_stream));
    assert_eq!(o4["estimated_requests"], 0);
    let expect_o4 = cost(chat, &O4) + cost(chat_stream, &O4) + cost(responses_stream, &O4);
    assert_eq!(
        (o4["cost_usd"].as_f64().unwrap() * 1e9).round() as u64,
        expect_o4
    );

    let sonnet = row(&by_model, "claude-sonnet-4-5");
    assert_eq!(tokens(sonnet), add(msg, msg_stream));
    assert_eq!(
        (sonnet["cost_usd"].as_f64().unwrap() * 1e9).round() as u64,
        cost(msg, &SONNET) + cost(msg_stream, &SONNET)
    );
    let flash = row(&by_model, "gemini-2.5-flash");
    assert_eq!(tokens(flash), add(gen, gen_stream));
    assert_eq!(
        (flash["cost_usd"].as_f64().unwrap() * 1e9).round() as u64,
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
    let by_key = admin_usage(&gw, &admin, "key").await;
    assert_eq!(row(&by_key, key.split('_').nth(1).unwrap())["requests"], 11);

    // Prometheus agrees, and no event was dropped.
    let m = request(gw.admin_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(m.status, 200);
    let text = m.text();
    assert_eq!(
        metric(&text, "tollgate_usage_events_dropped_total", ""),
        0.0
    );
    assert_eq!(
        metric(&text, "tollgate_requests_total", ""),
        requests as f64
    );
    assert_eq!(
        metric(&text, "tollgate_requests_total", "status_class=\"2xx\""),
        10.0
    );
    assert_eq!(
        metric(&text, "tollgate_requests_total", "status_class=\"4xx\""),
        2.0
    );
    assert_eq!(
        metric(&text, "tollgate_tokens_total", "type=\"cache_write\""),
        (msg.cache_write) as f64
    );
    assert_eq!(
        metric(
            &text,
            "tollgate_tokens_total",
            "model=\"o4-mini\",type=\"reasoning\""
        ) + metric(
            &text,
            "tollgate_tokens_total",
            "type=\"reasoning\",model=\"o4-mini\""
        ),
        (192 + 128 + 384) as f64
    );
    assert_eq!(metric(&text, "tollgate_unpriced_requests_total", ""), 1.0);
    assert!(text.contains("gen_ai_server_time_to_first_token_bucket"));
    assert_eq!(
        metric(&text, "tollgate_overhead_seconds_count", ""),
        requests as f64
    );
    assert_eq!(
        metric(&text, "tollgate_requests_in_flight", ""),
        0.0,
        "{}",
        text.lines()
            .filter(|l| l.contains("in_flight"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!text.contains(&key[16..]), "a key secret reached /metrics");

    // Pruning by age: nothing is 1 day old yet; everything is older than the future.
    assert!(gw
        .cli_ok(&["usage", "prune", "--older-than", "1d"])
        .starts_with("deleted 0 usage events"));
    let by_day = wait_for_events(&gw, &admin, requests).await;
    assert_eq!(by_day["rows"].as_array().unwrap().len(), 1);
    for secret in [&key[16..], &admin[16..], "sk-o"] {
        assert!(!gw.logs().contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn admin_usage_needs_an_admin() {
    let (o, a, g) = (
        MockUpstream::start().await,
        MockUpstream::start().await,
        MockUpstream::start().await,
    );
    let (gw, member, _admin) = gateway(&o, &a, &g, 1);
    let r = request(gw.admin_addr, "GET", "/admin/usage", &[], b"").await;
    assert_eq!(r.status, 401);
    let auth = format!("Bearer {member}");
    let r = request(
        gw.admin_addr,
        "GET",
        "/admin/usage",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        gw.proxy_addr,
        "GET",
        "/admin/usage",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(
        r.status, 404,
        "admin paths do not exist on the proxy listener"
    );
    let r = request(gw.proxy_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn sigterm_during_50_streams_loses_no_event() {
    let (o, a, g) = (
        MockUpstream::start().await,
        MockUpstream::start().await,
        MockUpstream::start().await,
    );
    let (mut gw, key, _admin) = gateway(&o, &a, &g, 5);
    let addr = gw.proxy_addr;
    let mut clients = Vec::new();
    for i in 0..50 {
        let key = key.clone();
        clients.push(tokio::spawn(async move {
            let body = format!(r#"{{"model":"claude-sonnet-4-5-slow-stream","max_tokens":{i},"messages":[],"stream":true}}"#);
            request(addr, "POST", "/v1/messages", &[("x-api-key", key.as_str())], body.as_bytes()).await
        }));
    }
    a.wait_for_requests(50, Duration::from_secs(10)).await;
    gw.terminate();
    for c in clients {
        let r = c.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete, "a stream was cut by the shutdown");
    }
    let status = gw
        .wait_exit_async(Duration::from_secs(20))
        .await
        .expect("the gateway exits");
    assert!(status.success(), "{status:?}");
    let stored: Value =
        serde_json::from_str(&gw.cli_ok(&["usage", "--by", "model", "--json"])).unwrap();
    let r = row(&stored, "claude-sonnet-4-5-slow-stream");
    assert_eq!(r["requests"], 50);
    assert_eq!(r["estimated_requests"], 0);
    assert_eq!(r["output_tokens"], 50 * 89);
}
