//! Byte-exact responses (stream and not) in every dialect, the header policy both ways,
//! many concurrent streams, and upstream TLS with SNI and certificate checks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::gateway::GatewayBuilder;
use common::http::request;
use common::mock_upstream::{strip_usage_chunk, MockUpstream};

fn routes_all(name: &str) -> String {
    format!("  - models: [\"*\"]\n    upstreams: [{name}]\n")
}

#[tokio::test]
async fn every_dialect_and_endpoint_is_byte_exact_stream_and_not() {
    let o = MockUpstream::start().await;
    let a = MockUpstream::start().await;
    let g = MockUpstream::start().await;
    let ups = format!(
        "  - name: o\n    kind: openai\n    base_url: \"{}\"\n  - name: a\n    kind: anthropic\n    base_url: \"{}\"\n  - name: g\n    kind: gemini\n    base_url: \"{}\"\n",
        o.base_url(),
        a.base_url(),
        g.base_url()
    );
    let routes = "  - models: [\"claude-*\"]\n    upstreams: [a]\n  - models: [\"gemini-*\"]\n    upstreams: [g]\n  - models: [\"*\"]\n    upstreams: [o]\n";
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes.into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str())];
    let cases: Vec<(&MockUpstream, &str, String, bool)> = vec![
        (
            &o,
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[]}"#.into(),
            false,
        ),
        (
            &o,
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[],"stream":true}"#.into(),
            true,
        ),
        (
            &o,
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x"}"#.into(),
            false,
        ),
        (
            &o,
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#.into(),
            true,
        ),
        (
            &o,
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"x"}"#.into(),
            false,
        ),
        (
            &o,
            "/v1/responses",
            r#"{"model":"gpt-4.1","input":"x"}"#.into(),
            false,
        ),
        (
            &o,
            "/v1/responses",
            r#"{"model":"gpt-4.1","input":"x","stream":true}"#.into(),
            true,
        ),
        (
            &a,
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#.into(),
            false,
        ),
        (
            &a,
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"stream":true}"#.into(),
            true,
        ),
        (
            &a,
            "/v1/messages/count_tokens",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#.into(),
            false,
        ),
        (
            &g,
            "/v1beta/models/gemini-2.0-flash:generateContent",
            r#"{"contents":[]}"#.into(),
            false,
        ),
        (
            &g,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
            r#"{"contents":[]}"#.into(),
            true,
        ),
    ];
    for (mock, path, body, stream) in cases {
        let r = request(gw.proxy_addr, "POST", path, &h, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{path} {body}");
        let sent = mock.requests().pop().unwrap().response_body;
        assert!(!sent.is_empty());
        assert!(
            r.body == strip_usage_chunk(&sent),
            "{path} stream={stream}: client bytes differ from upstream bytes"
        );
        if stream {
            assert!(
                r.header("content-type")
                    .unwrap()
                    .starts_with("text/event-stream"),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn header_policy_both_ways() {
    let mock = MockUpstream::start().await;
    let gw = GatewayBuilder::new()
        .only_openai_upstream(&mock.base_url(), "    keys: [\"sk-up\"]\n")
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    let sent_headers = [
        ("authorization", auth.as_str()),
        ("cookie", "session=1"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-host", "evil"),
        ("forwarded", "for=10.0.0.1"),
        ("x-real-ip", "10.0.0.1"),
        ("x-unknown-thing", "1"),
        ("proxy-authorization", "Basic x"),
        ("te", "trailers"),
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("user-agent", "OpenAI/Python 1.99"),
        ("openai-organization", "org-1"),
        ("openai-project", "proj-1"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("x-stainless-lang", "python"),
        ("accept-encoding", "gzip, br"),
    ];
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &sent_headers,
        br#"{"model":"gpt-4o-mini"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = mock.requests().pop().unwrap();
    let names: Vec<&str> = seen.headers.iter().map(|(k, _)| k.as_str()).collect();
    for dropped in [
        "cookie",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "x-unknown-thing",
        "proxy-authorization",
        "te",
    ] {
        assert!(!names.contains(&dropped), "{dropped} went upstream");
    }
    for (kept, value) in [
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("user-agent", "OpenAI/Python 1.99"),
        ("openai-organization", "org-1"),
        ("openai-project", "proj-1"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("x-stainless-lang", "python"),
        ("accept-encoding", "identity"),
        ("authorization", "Bearer sk-up"),
        ("host", &mock.base_url()["http://".len()..]),
    ] {
        assert_eq!(seen.header(kept), Some(value), "{kept}");
    }
    // Response: provider headers pass, cookies and hop-by-hop do not, our id is added.
    assert_eq!(r.header("set-cookie"), None);
    assert!(r.header("x-request-id").unwrap().starts_with("req_mock_"));
    assert!(r.header("openai-processing-ms").is_some());
    assert!(r.header("x-ratelimit-remaining-requests").is_some());
    assert!(r
        .header("x-tollgate-request-id")
        .is_some_and(|v| v.len() >= 16));
}

#[tokio::test]
async fn a_hundred_concurrent_streams_all_intact() {
    let mock = MockUpstream::start().await;
    let ups = format!(
        "  - name: a\n    kind: anthropic\n    base_url: \"{}\"\n",
        mock.base_url()
    );
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes_all("a"))
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let addr = gw.proxy_addr;
    let mut tasks = Vec::new();
    for i in 0..120 {
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let model = if i % 2 == 0 {
                "claude-slow-stream"
            } else {
                "claude-sonnet-4-5"
            };
            let body =
                format!(r#"{{"model":"{model}","max_tokens":{i},"messages":[],"stream":true}}"#);
            request(
                addr,
                "POST",
                "/v1/messages",
                &[("x-api-key", key.as_str())],
                body.as_bytes(),
            )
            .await
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
            .find(|s| {
                s.response_headers
                    .iter()
                    .any(|(k, v)| k == "x-request-id" && *v == id)
            })
            .unwrap();
        assert!(r.body == up.response_body, "stream {id} differs");
    }
}

#[tokio::test]
async fn a_5_mb_stream_passes_intact() {
    let mock = MockUpstream::start().await;
    let ups = format!(
        "  - name: o\n    kind: openai\n    base_url: \"{}\"\n",
        mock.base_url()
    );
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes_all("o"))
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &[("authorization", &auth)],
        br#"{"model":"big-stream","stream":true}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let sent = mock.requests().pop().unwrap().response_body;
    assert!(sent.len() > 4_000_000);
    assert!(r.body == strip_usage_chunk(&sent));
}

#[tokio::test]
async fn include_usage_is_added_and_its_chunk_removed_unless_the_client_asked() {
    let mock = MockUpstream::start().await;
    let ups = format!("  - name: o\n    kind: openai\n    base_url: \"{}\"\n  - name: plain\n    kind: openai\n    base_url: \"{}\"\n    stream_include_usage: false\n", mock.base_url(), mock.base_url());
    let routes = "  - models: [\"gpt-3.5*\"]\n    upstreams: [plain]\n  - models: [\"*\"]\n    upstreams: [o]\n";
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes.into())
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    let auth = format!("Bearer {key}");
    let h = [("authorization", auth.as_str())];
    let usage_chunks = |body: &[u8]| {
        common::mock_upstream::sse_events(body)
            .iter()
            .filter(|e| common::mock_upstream::is_openai_usage_chunk(e))
            .count()
    };

    // The client did not ask: Tollgate asks upstream and removes exactly that chunk.
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &h,
        br#"{"model":"gpt-4o","stream":true}"#,
    )
    .await;
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.json()["stream_options"]["include_usage"], true);
    assert_eq!(usage_chunks(&seen.response_body), 1);
    assert_eq!(usage_chunks(&r.body), 0);
    assert!(r.body == strip_usage_chunk(&seen.response_body));
    assert!(r.body.ends_with(b"data: [DONE]\n\n"));

    // The client asked: it keeps the chunk, and its body goes upstream untouched.
    let asked = br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#;
    let r = request(gw.proxy_addr, "POST", "/v1/chat/completions", &h, asked).await;
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.body, asked);
    assert_eq!(usage_chunks(&r.body), 1);
    assert!(r.body == seen.response_body);

    // Turned off for an upstream: nothing added, nothing removed.
    let body = br#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#;
    let r = request(gw.proxy_addr, "POST", "/v1/completions", &h, body).await;
    let seen = mock.requests().pop().unwrap();
    assert_eq!(seen.body, body);
    assert!(r.body == seen.response_body);
}

#[tokio::test]
async fn streams_are_relayed_event_by_event_not_buffered() {
    let mock = MockUpstream::start().await;
    let ups = format!(
        "  - name: a\n    kind: anthropic\n    base_url: \"{}\"\n",
        mock.base_url()
    );
    let gw = GatewayBuilder::new()
        .upstreams_yaml(ups)
        .routes_yaml(routes_all("a"))
        .start_with_user("alice");
    let key = gw.create_key("alice", &[]);
    for filler in [0, 70_000] {
        let body = format!(
            r#"{{"model":"claude-slow-stream","stream":true,"max_tokens":9,"messages":[],"pad":"{}"}}"#,
            "x".repeat(filler)
        );
        let mut s = common::http::request_streaming(
            gw.proxy_addr,
            "POST",
            "/v1/messages",
            &[("x-api-key", key.as_str())],
            body.as_bytes(),
        )
        .await;
        assert_eq!(s.status, 200);
        let first = s.next_chunk().await.unwrap();
        assert!(
            first.starts_with(b"event: message_start"),
            "{}",
            String::from_utf8_lossy(&first)
        );
        // The first event reached the client while the upstream was still sending.
        assert!(
            !mock.last_request().unwrap().finished,
            "filler {filler}: the response was buffered"
        );
        s.read_to_end().await;
        assert!(s.is_complete());
        assert!(s.received() == mock.last_request().unwrap().response_body.as_slice());
    }
}
