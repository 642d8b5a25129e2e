//! An upstream that dies mid-stream: the client gets everything the upstream sent, then a
//! final error event in its own dialect and a proper end of the response, on both
//! transports (bodies under and over 64 KiB), whether the upstream stopped between
//! events or inside one; and the gateway serves the next request normally.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::mock::{sse_events, strip_usage_chunk};
use common::Scenario;

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_in_the_clients_dialect() {
    let s = Scenario::start().await;
    for filler in [0, 70_000] {
        let pad = "x".repeat(filler);
        for cut in ["cut-stream", "cut-mid-event"] {
            let cases = [
                (
                    &s.anthropic,
                    "/v1/messages".to_owned(),
                    format!(
                        r#"{{"model":"claude-sonnet-4-5-{cut}","stream":true,"max_tokens":9,"messages":[],"pad":"{pad}"}}"#
                    ),
                ),
                (
                    &s.openai,
                    "/v1/chat/completions".to_owned(),
                    format!(
                        r#"{{"model":"gpt-4o-{cut}","stream":true,"messages":[],"pad":"{pad}"}}"#
                    ),
                ),
                (
                    &s.gemini,
                    format!("/v1beta/models/gemini-2.5-flash-{cut}:streamGenerateContent?alt=sse"),
                    format!(r#"{{"contents":[],"pad":"{pad}"}}"#),
                ),
            ];
            for (mock, path, body) in cases {
                let what = format!("{path} {cut} filler {filler}");
                let r = s.gw.post(&path, &s.key, body).await;
                assert_eq!(r.status, 200, "{what}");
                assert!(
                    r.complete,
                    "{what}: the response must end properly, not be cut"
                );
                let sent = strip_usage_chunk(&mock.last_request().unwrap().response_body);
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
    let body = br#"{"model":"claude-sonnet-4-5","stream":true,"max_tokens":9,"messages":[]}"#;
    let r = s.gw.post("/v1/messages", &s.key, body).await;
    assert_eq!(r.status, 200);
    assert!(!String::from_utf8_lossy(&r.body).contains("event: error"));
}
