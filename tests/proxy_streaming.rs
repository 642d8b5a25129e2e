//! Responses pass through byte for byte: every endpoint of every dialect, streamed and
//! not, 120 concurrent streams and a 5 MB one arrive exactly as the upstream sent them,
//! relayed event by event as they come rather than buffered; the header policy drops
//! what must not cross in either direction; and the usage chunk Tollgate asks OpenAI
//! for is removed unless the client asked for it too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::http::{request, request_streaming};
use common::mock::{is_openai_usage_chunk, sse_events, strip_usage_chunk};
use common::{GatewayBuilder, MockUpstream, Scenario, Upstream};

#[tokio::test]
async fn every_dialect_and_endpoint_is_byte_exact_stream_and_not() {
    let s = Scenario::start().await;
    let (o, a, g) = (&s.openai, &s.anthropic, &s.gemini);
    let cases: [(&MockUpstream, &str, &str, bool); 12] = [
        (
            o,
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
            false,
        ),
        (
            o,
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[],"stream":true}"#,
            true,
        ),
        (
            o,
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x"}"#,
            false,
        ),
        (
            o,
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#,
            true,
        ),
        (
            o,
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"x"}"#,
            false,
        ),
        (
            o,
            "/v1/responses",
            r#"{"model":"gpt-4.1","input":"x"}"#,
            false,
        ),
        (
            o,
            "/v1/responses",
            r#"{"model":"gpt-4.1","input":"x","stream":true}"#,
            true,
        ),
        (
            a,
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#,
            false,
        ),
        (
            a,
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"stream":true}"#,
            true,
        ),
        (
            a,
            "/v1/messages/count_tokens",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            false,
        ),
        (
            g,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            r#"{"contents":[]}"#,
            false,
        ),
        (
            g,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            r#"{"contents":[]}"#,
            true,
        ),
    ];
    for (mock, path, body, stream) in cases {
        let r = s.gw.post(path, &s.key, body).await;
        assert_eq!(r.status, 200, "{path} {body}");
        let sent = mock.last_request().unwrap().response_body;
        assert!(!sent.is_empty());
        assert!(
            r.body == strip_usage_chunk(&sent),
            "{path} stream={stream}: client bytes differ from upstream bytes"
        );
        if stream {
            let ctype = r.header("content-type").unwrap();
            assert!(ctype.starts_with("text/event-stream"), "{path}");
        }
    }
}

#[tokio::test]
async fn header_policy_both_ways() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock).keys(&["sk-up"]))
        .start_with_key("alice");
    let auth = format!("Bearer {key}");
    // Never forwarded: cookies, forwarding and client-address fields, unknown fields,
    // hop-by-hop fields.
    let dropped = [
        ("cookie", "session=1"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-host", "evil"),
        ("forwarded", "for=10.0.0.1"),
        ("x-real-ip", "10.0.0.1"),
        ("x-unknown-thing", "1"),
        ("proxy-authorization", "Basic x"),
        ("te", "trailers"),
    ];
    // Forwarded as sent: what the SDKs and the providers' APIs use.
    let kept = [
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("user-agent", "OpenAI/Python 1.99"),
        ("openai-organization", "org-1"),
        ("openai-project", "proj-1"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("x-stainless-lang", "python"),
    ];
    let mut sent = vec![("authorization", auth.as_str())];
    sent.extend(dropped);
    sent.extend(kept);
    sent.push(("accept-encoding", "gzip, br"));
    let body = br#"{"model":"gpt-4o-mini"}"#;
    let r = request(gw.proxy_addr, "POST", "/v1/chat/completions", &sent, body).await;
    assert_eq!(r.status, 200);
    let seen = mock.last_request().unwrap();
    let names: Vec<&str> = seen.headers.iter().map(|(k, _)| k.as_str()).collect();
    for (dropped, _) in dropped {
        assert!(!names.contains(&dropped), "{dropped} went upstream");
    }
    // Rewritten: the provider's key, no compression, the upstream's host.
    let rewritten = [
        ("accept-encoding", "identity"),
        ("authorization", "Bearer sk-up"),
        ("host", &mock.base_url()["http://".len()..]),
    ];
    for (kept, value) in kept.into_iter().chain(rewritten) {
        assert_eq!(seen.header(kept), Some(value), "{kept}");
    }
    // Response: provider headers pass, cookies and hop-by-hop do not, our id is added.
    assert_eq!(r.header("set-cookie"), None);
    assert!(r.header("x-request-id").unwrap().starts_with("req_mock_"));
    assert!(r.header("openai-processing-ms").is_some());
    assert!(r.header("x-ratelimit-remaining-requests").is_some());
    let ours = r.header("x-tollgate-request-id");
    assert!(ours.is_some_and(|v| v.len() >= 16));
}

/// A gateway whose one upstream `a` (Anthropic, on `mock`) serves every model, and a
/// key of alice.
fn anthropic_gateway(mock: &MockUpstream) -> (common::Gateway, String) {
    GatewayBuilder::new()
        .only_upstream(Upstream::anthropic("a", mock))
        .start_with_key("alice")
}

#[tokio::test]
async fn a_hundred_concurrent_streams_all_intact() {
    let mock = MockUpstream::start().await;
    let (gw, key) = anthropic_gateway(&mock);
    let addr = gw.proxy_addr;
    let mut tasks = Vec::new();
    for i in 0..120 {
        let key = key.clone();
        let model = if i % 2 == 0 {
            "claude-slow-stream"
        } else {
            "claude-sonnet-4-5"
        };
        let body = format!(r#"{{"model":"{model}","max_tokens":{i},"messages":[],"stream":true}}"#);
        tasks.push(tokio::spawn(async move {
            let h = [("x-api-key", key.as_str())];
            request(addr, "POST", "/v1/messages", &h, body.as_bytes()).await
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let seen = mock.requests();
    assert_eq!(seen.len(), 120);
    for r in got {
        assert_eq!(r.status, 200);
        // Find the upstream exchange with the same x-request-id and compare bytes.
        let id = r.header("x-request-id").unwrap().to_owned();
        let up = seen
            .iter()
            .find(|s| s.response_header("x-request-id") == Some(id.as_str()))
            .unwrap();
        assert!(r.body == up.response_body, "stream {id} differs");
    }
}

#[tokio::test]
async fn a_5_mb_stream_passes_intact() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &mock))
        .start_with_key("alice");
    let r = gw
        .chat(&key, br#"{"model":"big-stream","stream":true}"#)
        .await;
    assert_eq!(r.status, 200);
    let sent = mock.last_request().unwrap().response_body;
    assert!(sent.len() > 4_000_000);
    assert!(r.body == strip_usage_chunk(&sent));
}

#[tokio::test]
async fn include_usage_is_added_and_its_chunk_removed_unless_the_client_asked() {
    let mock = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::openai("o", &mock))
        .upstream(Upstream::openai("plain", &mock).set("stream_include_usage", false))
        .route(&["gpt-3.5*"], &["plain"])
        .route(&["*"], &["o"])
        .start_with_key("alice");
    let usage_chunks = |body: &[u8]| {
        sse_events(body)
            .iter()
            .filter(|e| is_openai_usage_chunk(e))
            .count()
    };

    // The client did not ask: Tollgate asks upstream and removes exactly that chunk.
    let r = gw.chat(&key, br#"{"model":"gpt-4o","stream":true}"#).await;
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.json()["stream_options"]["include_usage"], true);
    assert_eq!(usage_chunks(&seen.response_body), 1);
    assert_eq!(usage_chunks(&r.body), 0);
    assert!(r.body == strip_usage_chunk(&seen.response_body));
    assert!(r.body.ends_with(b"data: [DONE]\n\n"));

    // The client asked: it keeps the chunk, and its body goes upstream untouched.
    let asked = br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#;
    let r = gw.chat(&key, asked).await;
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body, asked);
    assert_eq!(usage_chunks(&r.body), 1);
    assert!(r.body == seen.response_body);

    // Turned off for an upstream: nothing added, nothing removed.
    let body = br#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#;
    let r = gw.post("/v1/completions", &key, body).await;
    let seen = mock.last_request().unwrap();
    assert_eq!(seen.body, body);
    assert!(r.body == seen.response_body);
}

#[tokio::test]
async fn streams_are_relayed_event_by_event_not_buffered() {
    let mock = MockUpstream::start().await;
    let (gw, key) = anthropic_gateway(&mock);
    for filler in [0, 70_000] {
        let body = format!(
            r#"{{"model":"claude-held-stream","stream":true,"max_tokens":9,"messages":[],"pad":"{}"}}"#,
            "x".repeat(filler)
        );
        let h = [("x-api-key", key.as_str())];
        let mut s =
            request_streaming(gw.proxy_addr, "POST", "/v1/messages", &h, body.as_bytes()).await;
        assert_eq!(s.status, 200);
        // The upstream holds the rest of its stream until the client has the first event.
        let first = tokio::time::timeout(Duration::from_secs(10), s.next_chunk())
            .await
            .unwrap_or_else(|_| panic!("filler {filler}: the response was buffered"))
            .unwrap();
        assert!(
            first.starts_with(b"event: message_start"),
            "{}",
            String::from_utf8_lossy(&first)
        );
        mock.release_held(1);
        s.read_to_end().await;
        assert!(s.is_complete());
        assert!(s.received() == mock.last_request().unwrap().response_body.as_slice());
    }
}
