//! Tests of the test infrastructure itself, without the gateway: the mock upstream serves
//! every fixture byte for byte, one HTTP chunk per SSE event, records what it received,
//! and each behaviour chosen by model name does what `tests/common/mock/`
//! promises. Also checks the raw client and the gateway config template.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::http::{request, send_raw, Client, Framing};
use common::mock::{
    event_data, event_name, fixture, is_openai_usage_chunk, sse_events, strip_usage_chunk,
    MockUpstream, BIG_STREAM_EVENTS, SLOW_STREAM_DELAY,
};
use common::{GatewayBuilder, Upstream};

const WAIT: Duration = Duration::from_secs(10);

/// (path, body, fixture, stream) for every endpoint and mode.
fn cases() -> Vec<(&'static str, &'static str, &'static str, bool)> {
    vec![
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[]}"#,
            "openai/chat.json",
            false,
        ),
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-4o-mini","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
            "openai/chat.sse",
            true,
        ),
        (
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x"}"#,
            "openai/completions.json",
            false,
        ),
        (
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true,"stream_options":{"include_usage":true}}"#,
            "openai/completions.sse",
            true,
        ),
        (
            "/v1/embeddings",
            r#"{"model":"text-embedding-3-small","input":"x"}"#,
            "openai/embeddings.json",
            false,
        ),
        (
            "/v1/responses",
            r#"{"model":"o4-mini","input":"x"}"#,
            "openai/responses.json",
            false,
        ),
        (
            "/v1/responses",
            r#"{"model":"o4-mini","input":"x","stream":true}"#,
            "openai/responses.sse",
            true,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[]}"#,
            "anthropic/messages.json",
            false,
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-sonnet-4-5","max_tokens":9,"messages":[],"stream":true}"#,
            "anthropic/messages.sse",
            true,
        ),
        (
            "/v1/messages/count_tokens",
            r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
            "anthropic/count_tokens.json",
            false,
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            r#"{"contents":[]}"#,
            "gemini/generate.json",
            false,
        ),
        (
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            r#"{"contents":[]}"#,
            "gemini/stream.sse",
            true,
        ),
        (
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            r#"{"contents":[]}"#,
            "gemini/stream.sse",
            true,
        ),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent?alt=sse",
            r#"{"contents":[]}"#,
            "gemini/stream.sse",
            true,
        ),
    ]
}

#[tokio::test]
async fn every_fixture_is_served_byte_for_byte_one_chunk_per_event() {
    let mock = MockUpstream::start().await;
    for (i, (path, body, fix, stream)) in cases().into_iter().enumerate() {
        let r = request(
            mock.addr(),
            "POST",
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.complete, "{path}");
        let want = fixture(fix);
        assert!(r.body == want, "{path}: body differs from {fix}");
        let seen = mock.last_request().unwrap();
        assert_eq!(seen.fixture, fix);
        assert!(
            seen.response_body == want,
            "{path}: the recorded response is what was sent"
        );
        assert_eq!(seen.id, i as u64 + 1);
        assert!(seen.finished);
        assert_eq!(
            r.header("x-request-id"),
            Some(format!("req_mock_{}", i + 1).as_str())
        );
        assert_eq!(
            r.header("x-mock-received-bytes"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(r.header("set-cookie"), Some("mock=1; Path=/"));
        assert_eq!(r.header("x-mock-secret-header"), Some("1"));
        if stream {
            assert_eq!(r.framing, Framing::Chunked, "{path}");
            assert!(
                r.header("content-type")
                    .unwrap()
                    .starts_with("text/event-stream"),
                "{path}"
            );
            let events = sse_events(&want);
            assert!(events.len() > 3, "{fix} has several events");
            assert_eq!(r.chunks, events, "{path}: one HTTP chunk per SSE event");
            assert_eq!(seen.response_chunks, events);
            assert!(seen.stream);
        } else {
            assert_eq!(r.framing, Framing::ContentLength(want.len()), "{path}");
            assert!(
                r.header("content-type")
                    .unwrap()
                    .starts_with("application/json"),
                "{path}"
            );
            assert!(r.chunks.is_empty());
            r.json();
        }
        match seen.provider {
            "openai" => {
                assert!(r.header("openai-processing-ms").is_some());
                assert!(r.header("x-ratelimit-remaining-requests").is_some());
            }
            "anthropic" => {
                assert_eq!(r.header("request-id"), r.header("x-request-id"));
                assert!(r.header("anthropic-ratelimit-requests-remaining").is_some());
            }
            "gemini" => assert!(r.header("server-timing").is_some()),
            other => panic!("{path}: provider {other}"),
        }
    }
    assert_eq!(mock.hits("gemini/stream.sse"), 3);
    assert_eq!(mock.request_count(), cases().len());
    assert_eq!(mock.sent_bodies().len(), cases().len());
}

#[test]
fn fixtures_have_the_providers_shapes() {
    // Non-stream bodies are JSON with the usage fields the accounting reads.
    let chat: serde_json::Value = serde_json::from_slice(&fixture("openai/chat.json")).unwrap();
    assert_eq!(chat["object"], "chat.completion");
    assert!(
        chat["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        chat["usage"]["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let resp: serde_json::Value =
        serde_json::from_slice(&fixture("openai/responses.json")).unwrap();
    assert!(resp["usage"]["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(resp["usage"]["output_tokens_details"]["reasoning_tokens"].is_u64());
    let msg: serde_json::Value =
        serde_json::from_slice(&fixture("anthropic/messages.json")).unwrap();
    assert!(
        msg["usage"]["cache_creation_input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(msg["usage"]["cache_read_input_tokens"].as_u64().unwrap() > 0);
    let gem: serde_json::Value = serde_json::from_slice(&fixture("gemini/generate.json")).unwrap();
    let um = &gem["usageMetadata"];
    assert_eq!(
        um["totalTokenCount"].as_u64().unwrap(),
        um["promptTokenCount"].as_u64().unwrap()
            + um["candidatesTokenCount"].as_u64().unwrap()
            + um["thoughtsTokenCount"].as_u64().unwrap()
    );

    // Streams: every event's data is JSON (or [DONE]), separators as each provider sends.
    for fix in [
        "openai/chat.sse",
        "openai/completions.sse",
        "openai/responses.sse",
        "anthropic/messages.sse",
        "gemini/stream.sse",
    ] {
        let bytes = fixture(fix);
        let events = sse_events(&bytes);
        assert_eq!(
            events.concat(),
            bytes,
            "{fix}: the events are the whole file"
        );
        for e in &events {
            let sep: &[u8] = if fix.starts_with("gemini") {
                b"\r\n\r\n"
            } else {
                b"\n\n"
            };
            assert!(
                e.ends_with(sep),
                "{fix}: event not terminated as the provider does"
            );
            let data = event_data(e).unwrap();
            if data != "[DONE]" {
                serde_json::from_str::<serde_json::Value>(&data)
                    .unwrap_or_else(|err| panic!("{fix}: {err}: {data}"));
            }
        }
    }
    let chat = sse_events(&fixture("openai/chat.sse"));
    assert_eq!(event_data(chat.last().unwrap()).unwrap(), "[DONE]");
    assert!(
        is_openai_usage_chunk(&chat[chat.len() - 2]),
        "the usage chunk comes right before [DONE]"
    );
    let event_names = |fix: &str| -> Vec<String> {
        let events = sse_events(&fixture(fix));
        events.iter().map(|e| event_name(e).unwrap()).collect()
    };
    let names = event_names("anthropic/messages.sse");
    assert_eq!(names.first().unwrap(), "message_start");
    assert!(names.contains(&"ping".to_owned()));
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let names = event_names("openai/responses.sse");
    assert_eq!(names.first().unwrap(), "response.created");
    assert!(names.contains(&"response.output_text.delta".to_owned()));
    assert_eq!(names.last().unwrap(), "response.completed");
}

#[tokio::test]
async fn openai_usage_chunk_only_when_asked() {
    let mock = MockUpstream::start().await;
    for path in ["/v1/chat/completions", "/v1/completions"] {
        let fix = if path == "/v1/chat/completions" {
            "openai/chat.sse"
        } else {
            "openai/completions.sse"
        };
        let r = mock
            .post(path, br#"{"model":"gpt-4o-mini","stream":true}"#)
            .await;
        assert_eq!(r.status, 200);
        let full = fixture(fix);
        let stripped = strip_usage_chunk(&full);
        assert!(
            r.body == stripped,
            "{path}: without include_usage the usage chunk is not sent"
        );
        assert_eq!(r.chunks.len(), sse_events(&full).len() - 1);
        assert!(!r.chunks.iter().any(|c| is_openai_usage_chunk(c)));
        assert!(r.body.ends_with(b"data: [DONE]\n\n"));
    }
}

#[tokio::test]
async fn requests_are_recorded_with_headers_and_body_in_order() {
    let mock = MockUpstream::start().await;
    let body = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(
        mock.addr(),
        "POST",
        "/v1/chat/completions?x=1",
        &[
            ("Authorization", "Bearer sk-1"),
            ("X-Custom", "a"),
            ("x-custom", "b"),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.path_and_query, "/v1/chat/completions?x=1");
    assert_eq!(s.version, "HTTP/1.1");
    let names: Vec<&str> = s.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "host",
            "authorization",
            "x-custom",
            "x-custom",
            "content-type",
            "content-length",
            "connection"
        ]
    );
    assert_eq!(s.header("authorization"), Some("Bearer sk-1"));
    assert_eq!(s.header_all("x-custom"), ["a", "b"]);
    assert!(
        s.raw_head.contains("X-Custom: a\r\n"),
        "the raw head keeps the original case"
    );
    assert_eq!(s.body, body);
    assert!(!s.body_was_chunked);
    assert_eq!(s.json()["messages"][0]["content"], "hi");
    assert_eq!(
        (s.provider, s.endpoint, s.model.as_deref(), s.stream),
        ("openai", "chat_completions", Some("gpt-4o-mini"), false)
    );

    // A chunked request body is de-chunked; an unknown path gets a 404; bad JSON a 400.
    let chunked = b"10\r\n{\"model\":\"claude\r\n8\r\n-x\",\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
    let r = request(
        mock.addr(),
        "POST",
        "/v1/messages",
        &[("transfer-encoding", "chunked")],
        chunked,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = mock.last_request().unwrap();
    assert!(s.body_was_chunked);
    assert_eq!(s.body, br#"{"model":"claude-x","a":1}"#);
    assert_eq!(r.header("x-mock-received-bytes"), Some("26"));

    let r = mock.post("/v2/nope", b"{}").await;
    assert_eq!(r.status, 404);
    assert_eq!(mock.last_request().unwrap().endpoint, "unknown");
    for (path, body) in [
        ("/v1/chat/completions", &b"{nope"[..]),
        ("/v1/messages", b"{\"max_tokens\":1}"),
    ] {
        let r = mock.post(path, body).await;
        assert_eq!(r.status, 400, "{path}");
        let fix = if path.starts_with("/v1/messages") {
            "anthropic/error_400.json"
        } else {
            "openai/error_400.json"
        };
        assert!(r.body == fixture(fix));
    }
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let mock = MockUpstream::start().await;
    let mut client = Client::connect(mock.addr()).await;
    for i in 0..3 {
        let stream = i % 2 == 1;
        let body = format!(r#"{{"model":"claude-sonnet-4-5","stream":{stream}}}"#);
        let r = client
            .request("POST", "/v1/messages", &[], body.as_bytes())
            .await;
        assert_eq!(r.status, 200);
        assert!(r.complete);
        let want = fixture(if stream {
            "anthropic/messages.sse"
        } else {
            "anthropic/messages.json"
        });
        assert!(r.body == want);
    }
    assert_eq!(mock.connections(), 1);
    assert!(mock.requests().iter().all(|r| r.connection == 1));
    // The same with Expect: 100-continue, which the mock answers before the body.
    let r = client
        .request(
            "POST",
            "/v1/messages",
            &[("expect", "100-continue")],
            br#"{"model":"c"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(mock.connections(), 1);
}

#[tokio::test]
async fn error_behaviours_answer_in_each_dialect() {
    let mock = MockUpstream::start().await;
    for (path, body, dir) in [
        (
            "/v1/chat/completions",
            r#"{"model":"gpt-error-429","stream":true}"#,
            "openai",
        ),
        (
            "/v1/messages",
            r#"{"model":"claude-error-429"}"#,
            "anthropic",
        ),
        (
            "/v1beta/models/gemini-error-429:generateContent",
            "{}",
            "gemini",
        ),
    ] {
        let r = mock.post(path, body.as_bytes()).await;
        assert_eq!(r.status, 429, "{path}");
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(
            r.body == fixture(&format!("{dir}/error_429.json")),
            "{path}"
        );
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "errors are JSON, even for streams"
        );
        assert_eq!(mock.last_request().unwrap().behaviours, ["error-429"]);
        for code in [400u16, 500] {
            let b = body.replace("429", &code.to_string());
            let p = path.replace("429", &code.to_string());
            let r = mock.post(&p, b.as_bytes()).await;
            assert_eq!(r.status, code, "{p}");
            assert!(r.body == fixture(&format!("{dir}/error_{code}.json")));
            assert_eq!(r.header("retry-after"), None);
        }
    }
    // Codes without a fixture get a generated body in the provider's shape.
    let r = mock
        .post("/v1/messages", br#"{"model":"claude-error-529"}"#)
        .await;
    assert_eq!(r.status, 529);
    assert_eq!(r.json()["error"]["type"], "overloaded_error");
    let r = mock
        .post("/v1beta/models/g-error-503:generateContent", b"{}")
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );
}

#[tokio::test]
async fn cut_stream_truncates_without_the_last_chunk() {
    let mock = MockUpstream::start().await;
    for (path, body, fix) in [
        (
            "/v1/messages",
            r#"{"model":"claude-cut-stream","stream":true}"#,
            "anthropic/messages.sse",
        ),
        (
            "/v1beta/models/gemini-cut-stream:streamGenerateContent?alt=sse",
            "{}",
            "gemini/stream.sse",
        ),
    ] {
        let r = mock.post(path, body.as_bytes()).await;
        assert_eq!(r.status, 200);
        assert!(!r.complete, "{path}: the terminating chunk must be missing");
        let events = sse_events(&fixture(fix));
        assert_eq!(r.chunks, events[..events.len() / 2].to_vec(), "{path}");
        assert!(r.body.len() < fixture(fix).len());
        assert!(fixture(fix).starts_with(&r.body));
        let seen = mock.last_request().unwrap();
        assert!(
            seen.response_body == r.body,
            "the record holds exactly what was sent"
        );
    }
    // cut-mid-event: half of the next event arrives inside a chunk that promised all of it.
    let r = mock
        .post(
            "/v1/chat/completions",
            br#"{"model":"cut-mid-event","stream":true}"#,
        )
        .await;
    assert!(!r.complete);
    let events = sse_events(&strip_usage_chunk(&fixture("openai/chat.sse")));
    let half = events.len() / 2;
    assert_eq!(r.chunks.len(), half + 1);
    assert_eq!(r.chunks[half], events[half][..events[half].len() / 2]);
    assert!(mock.last_request().unwrap().response_body == r.body);
    // A JSON answer is cut inside its Content-Length.
    let r = mock
        .post("/v1/chat/completions", br#"{"model":"cut-stream"}"#)
        .await;
    assert!(!r.complete);
    assert_eq!(r.body.len(), fixture("openai/chat.json").len() / 2);
}

#[tokio::test]
async fn big_stream_is_about_five_megabytes_of_valid_events() {
    let mock = MockUpstream::start().await;
    let r = mock
        .post(
            "/v1/chat/completions",
            br#"{"model":"big-stream","stream":true}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(r.body.len() > 5_000_000, "{} bytes", r.body.len());
    assert!(r.body.ends_with(b"data: [DONE]\n\n"));
    assert!(r.chunks.len() > BIG_STREAM_EVENTS);
    assert_eq!(r.chunks, sse_events(&r.body));
    assert!(mock.last_request().unwrap().response_body == r.body);
    for e in &r.chunks[1..r.chunks.len() - 1] {
        serde_json::from_str::<serde_json::Value>(&event_data(e).unwrap()).unwrap();
    }
    // The Anthropic one keeps its framing events around the deltas.
    let r = mock
        .post(
            "/v1/messages",
            br#"{"model":"claude-big-stream","stream":true}"#,
        )
        .await;
    let names: Vec<String> = r.chunks.iter().map(|e| event_name(e).unwrap()).collect();
    assert_eq!(
        names.iter().filter(|n| *n == "content_block_delta").count(),
        BIG_STREAM_EVENTS
    );
    assert_eq!(names.last().unwrap(), "message_stop");
}

#[tokio::test]
async fn slow_stream_paces_events_and_notices_a_client_that_leaves() {
    let mock = MockUpstream::start().await;
    let started = Instant::now();
    let mut s = mock
        .post_streaming(
            "/v1/messages",
            br#"{"model":"claude-slow-stream","stream":true}"#,
        )
        .await;
    assert_eq!(s.status, 200);
    assert_eq!(s.header("transfer-encoding"), Some("chunked"));
    let events = sse_events(&fixture("anthropic/messages.sse"));
    let first = s.next_chunk().await.unwrap();
    assert_eq!(first, events[0]);
    let second = s.next_chunk().await.unwrap();
    assert_eq!(second, events[1]);
    assert!(started.elapsed() >= SLOW_STREAM_DELAY, "events are paced");
    s.disconnect();
    let seen = mock
        .wait_until(WAIT, "the mock to see the client leave", |r| {
            r.first().is_some_and(|r| r.peer_closed)
        })
        .await;
    assert!(!seen[0].finished);

    // Read to the end: all events, at least (n-1) delays.
    let started = Instant::now();
    let mut s = mock
        .post_streaming("/v1/messages", br#"{"model":"slow-stream","stream":true}"#)
        .await;
    let body = s.read_to_end().await;
    assert!(s.is_complete());
    assert_eq!(body, fixture("anthropic/messages.sse"));
    assert!(started.elapsed() >= SLOW_STREAM_DELAY * (events.len() as u32 - 1));
}

#[tokio::test]
async fn hang_and_stall_hold_the_socket_until_the_client_leaves() {
    let mock = MockUpstream::start().await;
    let addr = mock.addr();
    let client = tokio::spawn(async move {
        common::http::try_request_timeout(
            addr,
            "POST",
            "/v1/chat/completions",
            &[],
            br#"{"model":"hang"}"#,
            Duration::from_millis(300),
        )
        .await
    });
    let seen = mock.wait_for_requests(1, WAIT).await;
    assert_eq!(seen[0].response_status, 0);
    let err = client.await.unwrap().unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::TimedOut,
        "no answer ever comes"
    );
    mock.wait_until(WAIT, "the hang to see the client leave", |r| {
        r[0].peer_closed
    })
    .await;

    let mut s = mock
        .post_streaming("/v1/messages", br#"{"model":"stall-stream","stream":true}"#)
        .await;
    let events = sse_events(&fixture("anthropic/messages.sse"));
    for e in &events[..events.len() / 2] {
        assert_eq!(&s.next_chunk().await.unwrap(), e);
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), s.next_chunk())
            .await
            .is_err(),
        "then silence"
    );
    drop(s);
    mock.wait_until(WAIT, "the stall to see the client leave", |r| {
        r[1].peer_closed
    })
    .await;
}

#[tokio::test]
async fn usage_missing_and_echo() {
    let mock = MockUpstream::start().await;
    for (path, body) in [
        ("/v1/chat/completions", r#"{"model":"usage-missing"}"#),
        (
            "/v1/chat/completions",
            r#"{"model":"usage-missing","stream":true,"stream_options":{"include_usage":true}}"#,
        ),
        (
            "/v1/responses",
            r#"{"model":"usage-missing","stream":true}"#,
        ),
        ("/v1/messages", r#"{"model":"usage-missing","stream":true}"#),
        ("/v1/messages", r#"{"model":"usage-missing"}"#),
        ("/v1beta/models/usage-missing:streamGenerateContent", "{}"),
        ("/v1beta/models/usage-missing:generateContent", "{}"),
    ] {
        let r = mock.post(path, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{path}");
        let text = r.text();
        assert!(
            !text.contains("\"usage\"") && !text.contains("usageMetadata"),
            "{path} {body}: {text}"
        );
        assert!(
            !text.contains("prompt_tokens") && !text.contains("input_tokens"),
            "{path} {body}"
        );
        assert!(r.body == mock.last_request().unwrap().response_body);
    }
    let big = format!(
        r#"{{"model":"echo","stream":true,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    let r = mock.post("/v1/chat/completions", big.as_bytes()).await;
    assert_eq!(
        r.framing,
        Framing::ContentLength(fixture("openai/chat.json").len()),
        "echo never streams"
    );
    assert_eq!(
        r.header("x-mock-received-bytes"),
        Some(big.len().to_string().as_str())
    );
}

#[tokio::test]
async fn client_handles_close_delimited_and_raw_requests() {
    // A server that answers without Content-Length and closes: the body ends at EOF.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nhello ")
            .await
            .unwrap();
        s.write_all(b"world").await.unwrap();
    });
    let r = send_raw(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.framing, r.complete),
        (200, Framing::Close, true)
    );
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("x-a"), Some("1"));
}

#[test]
fn gateway_config_template_is_complete_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let b = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", "http://127.0.0.1:1"))
        .alias("fast", "gpt-4o-mini")
        .server("max_body_bytes", 100000)
        .server("shutdown_grace_s", 5);
    let text = b.render_config(dir.path());
    let v: serde_yaml::Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(v["server"]["listen"][0].as_str(), Some("127.0.0.1:0"));
    assert_eq!(
        v["server"]["shutdown_grace_s"].as_u64(),
        Some(5),
        "a server setting replaces the default"
    );
    assert_eq!(v["server"]["max_body_bytes"].as_u64(), Some(100000));
    assert_eq!(v["admin"]["listen"].as_str(), Some("127.0.0.1:0"));
    assert_eq!(
        v["storage"]["path"].as_str().unwrap(),
        dir.path().join("tollgate.db").to_str().unwrap()
    );
    assert_eq!(v["secrets"]["master_key"].as_str(), Some(""));
    assert_eq!(v["upstreams"][0]["kind"].as_str(), Some("openai"));
    assert_eq!(v["routes"][0]["models"][0].as_str(), Some("*"));
    assert_eq!(v["routes"][0]["upstreams"][0].as_str(), Some("o"));
    assert_eq!(v["aliases"]["fast"].as_str(), Some("gpt-4o-mini"));
    assert!(
        v["pricing"].as_mapping().unwrap().is_empty(),
        "empty sections are empty maps, not null"
    );
    let text = GatewayBuilder::new().render_config(dir.path());
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert!(v["upstreams"].as_sequence().unwrap().is_empty());
    assert_eq!(v["server"]["shutdown_grace_s"].as_u64(), Some(1));
}
