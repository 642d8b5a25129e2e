//! Requests that end before their answer does: a client that leaves before the first
//! upstream byte is billed an estimate (the provider read the prompt), and the upstream
//! call is dropped; at shutdown, requests still running at the end of
//! `server.shutdown_grace_s` are ended by the gateway: each client gets its dialect's
//! error (an error event for a stream that started, a 503 otherwise) and each request
//! leaves exactly one usage event, written before the process exits. Both transports
//! (bodies under and over 64 KiB).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::calls::usage_row as row;
use common::http::{request, request_streaming};
use common::mock::sse_events;
use common::{eventually, MockUpstream, Scenario};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Filler sizes that take the two transports: Pingora's phases, and the large-body
/// transport past its 64 KiB replay buffer.
const FILLERS: [usize; 2] = [0, 70_000];

/// A prompt long enough that its estimate is well above zero.
const PROMPT: &str = "Why is the sky blue? Explain it to me like I am five years old, please.";

/// The three-dialect scenario with this shutdown grace (seconds) and an admin `root`;
/// and root's key.
async fn scenario(grace: u64) -> (Scenario, String) {
    let s =
        Scenario::start_with(|c| c.server("shutdown_grace_s", grace).user("root", "admin")).await;
    let admin = s.gw.create_key("root", &[]);
    (s, admin)
}

/// One request as a client sends it: the path, the credential header and the body.
struct Call {
    path: String,
    auth: (&'static str, String),
    body: String,
    model: String,
}

/// A call per dialect for a model with `word` in its name (`hang`, `stall-stream`), told
/// apart by `tag`; the body padded by `filler` bytes.
fn calls(key: &str, word: &str, tag: &str, filler: usize, stream: bool) -> Vec<Call> {
    let pad = "x".repeat(filler);
    let messages = format!(r#"[{{"role":"user","content":"{PROMPT}"}}]"#);
    let openai = format!("gpt-4o-{word}-{tag}");
    let anthropic = format!("claude-sonnet-4-5-{word}-{tag}");
    let gemini = format!("gemini-2.5-flash-{word}-{tag}");
    let method = if stream {
        "streamGenerateContent?alt=sse"
    } else {
        "generateContent"
    };
    vec![
        Call {
            path: "/v1/chat/completions".into(),
            auth: ("authorization", format!("Bearer {key}")),
            body: format!(
                r#"{{"model":"{openai}","stream":{stream},"messages":{messages},"pad":"{pad}"}}"#
            ),
            model: openai,
        },
        Call {
            path: "/v1/messages".into(),
            auth: ("x-api-key", key.to_owned()),
            body: format!(
                r#"{{"model":"{anthropic}","stream":{stream},"max_tokens":9,"messages":{messages},"pad":"{pad}"}}"#
            ),
            model: anthropic,
        },
        Call {
            path: format!("/v1beta/models/{gemini}:{method}"),
            auth: ("x-goog-api-key", key.to_owned()),
            body: format!(r#"{{"contents":[{{"parts":[{{"text":"{PROMPT}"}}]}}],"pad":"{pad}"}}"#),
            model: gemini,
        },
    ]
}

/// The mock that serves `path`.
fn mock_of<'a>(s: &'a Scenario, path: &str) -> &'a MockUpstream {
    match path {
        p if p.starts_with("/v1/chat") => &s.openai,
        p if p.starts_with("/v1/messages") => &s.anthropic,
        _ => &s.gemini,
    }
}

#[tokio::test]
async fn a_client_that_leaves_before_the_first_byte_is_billed_an_estimate() {
    let (s, admin) = scenario(1).await;
    let mut models = Vec::new();
    for filler in FILLERS {
        for call in calls(&s.key, "hang", &format!("f{filler}"), filler, false) {
            let mock = mock_of(&s, &call.path);
            let before = mock.request_count();
            let head = format!(
                "POST {} HTTP/1.1\r\nhost: x\r\n{}: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                call.path,
                call.auth.0,
                call.auth.1,
                call.body.len()
            );
            let mut client = TcpStream::connect(s.gw.proxy_addr).await.unwrap();
            client.write_all(head.as_bytes()).await.unwrap();
            client.write_all(call.body.as_bytes()).await.unwrap();
            // The provider has the prompt; the client gives up before any answer.
            mock.wait_for_requests(before + 1, Duration::from_secs(10))
                .await;
            drop(client);
            // The gateway drops its upstream call too: generation stops.
            let what = format!("{}: the upstream call to end", call.model);
            eventually(&what, Duration::from_secs(10), async || {
                mock.last_request().unwrap().peer_closed
            })
            .await;
            models.push(call.model);
        }
    }
    let doc = s.gw.usage_after(&admin, "model", models.len() as u64).await;
    for model in &models {
        let r = row(&doc, model);
        assert_eq!(r["requests"], 1, "{model}: {r}");
        assert_eq!(
            r["estimated_requests"], 1,
            "{model}: an estimate, not a 0: {r}"
        );
        assert!(r["input_tokens"].as_u64().unwrap() > 0, "{model}: {r}");
        assert_eq!(r["output_tokens"], 0, "{model}: nothing was generated: {r}");
    }
}

/// The data of the last event of a stream.
fn last_event_data(body: &[u8]) -> Value {
    let events = sse_events(body);
    let last = String::from_utf8_lossy(events.last().expect("an event")).into_owned();
    let data = last
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no data line in {last:?}"));
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
}

#[tokio::test]
async fn requests_that_outlive_the_grace_period_get_an_error_and_a_usage_event() {
    let (mut s, _admin) = scenario(1).await;
    let addr = s.gw.proxy_addr;
    let mut streams = Vec::new();
    let mut waiting = Vec::new();
    let mut models = Vec::new();
    for filler in FILLERS {
        let tag = format!("f{filler}");
        // Streams that stop halfway, socket open; and answers that never come.
        for call in calls(&s.key, "stall-stream", &tag, filler, true) {
            let headers = [(call.auth.0, call.auth.1.as_str())];
            let mut r =
                request_streaming(addr, "POST", &call.path, &headers, call.body.as_bytes()).await;
            assert_eq!(r.status, 200, "{}", call.model);
            // The first events are through before the shutdown.
            let first = tokio::time::timeout(Duration::from_secs(10), r.next_chunk()).await;
            assert!(matches!(first, Ok(Some(_))), "{}", call.model);
            models.push(call.model.clone());
            streams.push((call, r));
        }
        for call in calls(&s.key, "hang", &tag, filler, false) {
            let mock = mock_of(&s, &call.path);
            let before = mock.request_count();
            let (name, value) = (call.auth.0, call.auth.1.clone());
            let (path, body) = (call.path.clone(), call.body.clone());
            waiting.push((
                call.model.clone(),
                call.path.clone(),
                tokio::spawn(async move {
                    let headers = [(name, value.as_str())];
                    request(addr, "POST", &path, &headers, body.as_bytes()).await
                }),
            ));
            mock.wait_for_requests(before + 1, Duration::from_secs(10))
                .await;
            models.push(call.model);
        }
    }

    s.gw.terminate();
    for (call, mut r) in streams {
        let body = tokio::time::timeout(Duration::from_secs(10), r.read_to_end())
            .await
            .unwrap_or_else(|_| panic!("{}: the stream was never ended", call.model));
        assert!(
            r.is_complete(),
            "{}: the stream must end properly",
            call.model
        );
        let v = last_event_data(&body);
        let what = &call.model;
        if call.path.starts_with("/v1/messages") {
            let events = sse_events(&body);
            assert!(
                events.last().unwrap().starts_with(b"event: error\n"),
                "{what}"
            );
            assert_eq!(v["error"]["type"], "api_error", "{what}");
        } else if call.path.starts_with("/v1beta") {
            assert_eq!(v["error"]["status"], "UNAVAILABLE", "{what}");
        } else {
            assert_eq!(v["error"]["code"], "shutting_down", "{what}");
        }
    }
    for (model, path, task) in waiting {
        let r = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap_or_else(|_| panic!("{model}: no answer"))
            .unwrap();
        assert_eq!(r.status, 503, "{model}: {}", r.text());
        let v = r.json();
        if path.starts_with("/v1beta") {
            assert_eq!(v["error"]["status"], "UNAVAILABLE", "{model}");
        } else if path.starts_with("/v1/messages") {
            assert_eq!(v["type"], "error", "{model}");
        } else {
            assert_eq!(v["error"]["code"], "shutting_down", "{model}");
        }
    }
    let status = s.gw.exit_status(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");

    let stored: Value =
        serde_json::from_str(&s.gw.cli_ok(&["usage", "--by", "model", "--json"])).unwrap();
    for model in &models {
        let r = row(&stored, model);
        assert_eq!(r["requests"], 1, "{model}: exactly one event: {r}");
        assert!(r["input_tokens"].as_u64().unwrap() > 0, "{model}: {r}");
        if !model.starts_with("gemini") || model.contains("hang") {
            assert_eq!(r["estimated_requests"], 1, "{model}: {r}");
        }
        if model.contains("stall") {
            assert!(r["output_tokens"].as_u64().unwrap() > 0, "{model}: {r}");
        }
    }
}

#[tokio::test]
async fn a_request_whose_client_reads_nothing_is_still_recorded_before_the_exit() {
    let (mut s, _admin) = scenario(1).await;
    // About 5.5 MB of stream for a client that never reads: the gateway's writes block
    // once the socket buffers are full, so the request cannot end itself at the grace's
    // end; Pingora's runtime shutdown drops it.
    let model = "gpt-4o-big-stream";
    let body = format!(
        r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"{PROMPT}"}}]}}"#
    );
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        s.key,
        body.len()
    );
    let mut client = TcpStream::connect(s.gw.proxy_addr).await.unwrap();
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(body.as_bytes()).await.unwrap();
    s.openai.wait_for_requests(1, Duration::from_secs(10)).await;
    s.gw.terminate();
    let status = s.gw.exit_status(Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
    let stored: Value =
        serde_json::from_str(&s.gw.cli_ok(&["usage", "--by", "model", "--json"])).unwrap();
    let r = row(&stored, model);
    assert_eq!(r["requests"], 1, "{r}");
    assert_eq!(r["estimated_requests"], 1, "{r}");
    assert!(r["input_tokens"].as_u64().unwrap() > 0, "{r}");
    drop(client);
}
