//! An upstream that dies mid-stream: the client gets everything the upstream sent, then a
//! final error event in its own dialect and a proper end of the response, on both
//! transports; the usage event records what was seen; the gateway serves the next
//! request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::gateway::GatewayBuilder;
use common::http::request;
use common::mock_upstream::{sse_events, strip_usage_chunk, MockUpstream};

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_in_the_clients_dialect() {
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
    let pad = |n: usize| "x".repeat(n);

    for filler in [0, 70_000] {
        for cut in ["cut-stream", "cut-mid-event"] {
            let cases = [
                (
                    &a,
                    "/v1/messages".to_owned(),
                    format!(
                        r#"{{"model":"claude-sonnet-4-5-{cut}","stream":true,"max_tokens":9,"messages":[],"pad":"{}"}}"#,
                        pad(filler)
                    ),
                ),
                (
                    &o,
                    "/v1/chat/completions".to_owned(),
                    format!(
                        r#"{{"model":"gpt-4o-{cut}","stream":true,"messages":[],"pad":"{}"}}"#,
                        pad(filler)
                    ),
                ),
                (
                    &g,
                    format!("/v1beta/models/gemini-2.5-flash-{cut}:streamGenerateContent?alt=sse"),
                    format!(r#"{{"contents":[],"pad":"{}"}}"#, pad(filler)),
                ),
            ];
            for (mock, path, body) in cases {
                let what = format!("{path} {cut} filler {filler}");
                let r = request(gw.proxy_addr, "POST", &path, &h, body.as_bytes()).await;
                assert_eq!(r.status, 200, "{what}");
                assert!(
                    r.complete,
                    "{what}: the response must end properly, not be cut"
                );
                let sent = strip_usage_chunk(&mock.requests().pop().unwrap().response_body);
                assert!(
                    r.body.starts_with(&sent),
                    "{what}: the bytes before the failure pass unchanged"
                );
                let events = sse_events(&r.body[sent.len()..]);
                let last = events
                    .last()
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .unwrap_or_default();
                let data = last
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or_else(|| panic!("{what}: {last:?}"));
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                if path.starts_with("/v1/messages") {
                    assert!(last.starts_with("event: error\n"), "{what}: {last:?}");
                    assert_eq!(v["type"], "error");
                    assert_eq!(v["error"]["type"], "api_error");
                } else if path.starts_with("/v1beta") {
                    assert_eq!(v["error"]["status"], "UNAVAILABLE", "{what}");
                } else {
                    assert_eq!(v["error"]["code"], "upstream_stream_broken", "{what}");
                }
            }
        }
    }
    let r = request(
        gw.proxy_addr,
        "POST",
        "/v1/messages",
        &h,
        br#"{"model":"claude-sonnet-4-5","stream":true,"max_tokens":9,"messages":[]}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains("event: error"));
}
