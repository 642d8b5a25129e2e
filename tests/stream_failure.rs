//! An upstream that dies mid-stream: the client gets everything the upstream sent, then a
//! final error event in its own dialect and a proper end of the response, on both
//! transports (bodies under and over 64 KiB), whether the upstream stopped between
//! events or inside one; and the gateway serves the next request normally.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::mock::{event_data, event_name, sse_events, strip_usage_chunk};
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

/// The last event of a native stream cut by `model`'s upstream, as JSON: what a
/// translated stream for a client of the same dialect must end with.
async fn native_error(s: &Scenario, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = s.gw.post(path, &s.key, body.to_string()).await;
    let events = sse_events(&r.body);
    let data = event_data(events.last().unwrap()).unwrap();
    serde_json::from_str(&data).unwrap()
}

/// The events of an SSE body as (name, data as JSON).
fn parsed(body: &[u8]) -> Vec<(Option<String>, serde_json::Value)> {
    sse_events(body)
        .iter()
        .map(|e| {
            let data = event_data(e).unwrap_or_default();
            (
                event_name(e),
                serde_json::from_str(&data).unwrap_or_default(),
            )
        })
        .collect()
}

/// An Anthropic stream cut mid-block: every block that was started is stopped before the
/// final `error` event (the SDK and Claude Code fail with "Content block not found"
/// otherwise), the block open at the cut among them, and nothing clean follows.
fn assert_messages_cut(what: &str, body: &[u8], expected: &serde_json::Value) {
    let events = parsed(body);
    let mut open: Option<u64> = None;
    let (last, before) = events.split_last().unwrap();
    for (name, v) in before {
        let index = v["index"].as_u64();
        match name.as_deref() {
            Some("content_block_start") => {
                assert_eq!(open, None, "{what}: a block started over an open one");
                open = index;
            }
            Some("content_block_delta") => {
                assert_eq!(open, index, "{what}: a delta outside its block")
            }
            Some("content_block_stop") => {
                assert_eq!(open, index, "{what}: a stop of a block not open");
                open = None;
            }
            Some("message_start") => {}
            other => panic!("{what}: unexpected {other:?} before the error"),
        }
    }
    assert_eq!(open, None, "{what}: a block is still open at the error");
    let stop = &before.last().unwrap().0;
    assert_eq!(
        stop.as_deref(),
        Some("content_block_stop"),
        "{what}: the upstream was cut mid-block, which is closed first"
    );
    assert_eq!(last.0.as_deref(), Some("error"), "{what}");
    assert_eq!(&last.1, expected, "{what}");
}

#[tokio::test]
async fn a_translated_stream_cut_mid_block_ends_as_the_native_path_does_in_the_clients_dialect() {
    use serde_json::json;
    let s = Scenario::start().await;
    // Under and over 64 KiB: both transports.
    for pad in [String::new(), "x ".repeat(35_000)] {
        for cut in ["cut-stream", "cut-mid-event"] {
            let what =
                |client: &str, model: &str| format!("{client} on {model}, pad {}", pad.len());
            let broken =
                |up: &str| format!("upstream {up} ended the stream before it was complete");
            let mut native_chat = native_error(
                &s,
                "/v1/chat/completions",
                json!({"model": format!("gpt-4o-{cut}"), "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
            let mut native_messages = native_error(
                &s,
                "/v1/messages",
                json!({"model": format!("claude-sonnet-4-5-{cut}"), "stream": true, "max_tokens": 9,
                    "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
            let mut native_gemini = native_error(
                &s,
                &format!("/v1beta/models/gemini-2.5-flash-{cut}:streamGenerateContent?alt=sse"),
                json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
            )
            .await;

            // Anthropic clients on an OpenAI and on a Gemini upstream.
            for (model, up) in [
                (format!("gpt-4o-{cut}"), "o"),
                (format!("gemini-2.5-flash-{cut}"), "g"),
            ] {
                let body = json!({"model": model, "stream": true, "max_tokens": 50,
                    "messages": [{"role": "user", "content": format!("hi {pad}")}]});
                let r = s.gw.post("/v1/messages", &s.key, body.to_string()).await;
                let what = what("messages", &model);
                assert_eq!(r.status, 200, "{what}");
                assert!(r.complete, "{what}: the response must end properly");
                native_messages["error"]["message"] = json!(broken(up));
                assert_messages_cut(&what, &r.body, &native_messages);
            }

            // OpenAI Chat clients on an Anthropic upstream: the native path's error chunk.
            let model = format!("claude-sonnet-4-5-{cut}");
            let body = json!({"model": model, "stream": true, "max_tokens": 50,
                "messages": [{"role": "user", "content": format!("hi {pad}")}]});
            let r =
                s.gw.post("/v1/chat/completions", &s.key, body.to_string())
                    .await;
            let what_chat = what("chat", &model);
            assert!(r.status == 200 && r.complete, "{what_chat}");
            let events = parsed(&r.body);
            assert!(events.len() > 2, "{what_chat}: text came before the cut");
            assert!(
                !String::from_utf8_lossy(&r.body).contains("[DONE]"),
                "{what_chat}"
            );
            assert!(events[..events.len() - 1]
                .iter()
                .all(|e| e.1["error"].is_null()));
            native_chat["error"]["message"] = json!(broken("a"));
            assert_eq!(events.last().unwrap().1, native_chat, "{what_chat}");

            // Gemini clients on an Anthropic upstream, SSE: the native path's error.
            let contents = json!([{"role": "user", "parts": [{"text": format!("hi {pad}")}]}]);
            let path = format!("/v1beta/models/{model}:streamGenerateContent?alt=sse");
            let r =
                s.gw.post(&path, &s.key, json!({"contents": contents}).to_string())
                    .await;
            let what_gemini = what("gemini", &model);
            assert!(r.status == 200 && r.complete, "{what_gemini}");
            let events = parsed(&r.body);
            native_gemini["error"]["message"] = json!(broken("a"));
            assert_eq!(events.last().unwrap().1, native_gemini, "{what_gemini}");
            assert!(events[..events.len() - 1]
                .iter()
                .all(|e| e.1["error"].is_null()));
            // ... and as a JSON array: the error is its last element, the array closed.
            let path = format!("/v1beta/models/{model}:streamGenerateContent");
            let r =
                s.gw.post(&path, &s.key, json!({"contents": contents}).to_string())
                    .await;
            assert!(r.status == 200 && r.complete, "{what_gemini} (array)");
            let array: Vec<serde_json::Value> =
                serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                    panic!("{what_gemini}: {e}: {}", String::from_utf8_lossy(&r.body))
                });
            assert_eq!(
                array.last().unwrap()["error"]["status"],
                "UNAVAILABLE",
                "{what_gemini}"
            );
            assert_eq!(array.last().unwrap()["error"]["message"], broken("a"));

            // Responses clients on an Anthropic upstream: `response.failed`, nothing after.
            let body = json!({"model": model, "stream": true, "input": format!("hi {pad}")});
            let r = s.gw.post("/v1/responses", &s.key, body.to_string()).await;
            let what_responses = what("responses", &model);
            assert!(r.status == 200 && r.complete, "{what_responses}");
            let events = parsed(&r.body);
            let (name, last) = events.last().unwrap();
            assert_eq!(name.as_deref(), Some("response.failed"), "{what_responses}");
            assert_eq!(last["response"]["status"], "failed");
            assert_eq!(last["response"]["error"]["message"], broken("a"));
            assert!(events
                .iter()
                .all(|e| e.0.as_deref() != Some("response.completed")));
            assert!(
                events
                    .iter()
                    .any(|e| e.0.as_deref() == Some("response.output_text.delta")),
                "{what_responses}: text came before the cut"
            );
        }
    }
    // The gateway serves the next translated stream normally.
    let body = r#"{"model":"gpt-4o","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = s.gw.post("/v1/messages", &s.key, body).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("event: message_stop") && !text.contains("event: error"));
}
