//! Hostile input that reaches past the head: a Gemini model segment that tries to rewrite
//! the upstream path or query, client credentials smuggled into the query in any
//! spelling, and unauthenticated or oversized input that would cost storage and memory.
//! Each is refused (or cleaned) before anything goes upstream with the operator's key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::http::request;
use common::Scenario;

const GEMINI_BODY: &str = r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#;

/// `POST <path>` as a Gemini client: the key in `x-goog-api-key`.
async fn gemini_post(s: &Scenario, path: &str) -> common::http::Response {
    let headers = [
        ("x-goog-api-key", s.key.as_str()),
        ("content-type", "application/json"),
    ];
    request(
        s.gw.proxy_addr,
        "POST",
        path,
        &headers,
        GEMINI_BODY.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn a_gemini_model_segment_cannot_rewrite_the_upstream_path_or_query() {
    let s = Scenario::start().await;
    let hostile = [
        // `#` would end the path upstream: the request reached :countTokens.
        "/v1beta/models/gemini-2.0-flash:countTokens%23:generateContent",
        // `?` would start a query upstream: a parameter injected with the operator's key.
        "/v1beta/models/gemini-2.0-flash%3Fkey=injected%23:generateContent",
        "/v1beta/models/gemini-2.0-flash%3Falt=sse&x=1:generateContent",
        // Characters a URI cannot carry: these were 500s.
        "/v1beta/models/gemini-2.0-flash%0d%0ax-injected:%20y:generateContent",
        "/v1beta/models/gemini%0d%0a:generateContent",
        "/v1beta/models/gemini-2.0%20flash:generateContent",
        "/v1beta/models/gemini%00:streamGenerateContent?alt=sse",
        "/v1beta/models/gemini-%25:generateContent",
    ];
    for path in hostile {
        let r = gemini_post(&s, path).await;
        assert_eq!(r.status, 400, "{path}: {} {}", r.status, r.text());
        let e = r.json();
        assert_eq!(e["error"]["code"], 400, "{path}: {e}");
        assert_eq!(e["error"]["status"], "INVALID_ARGUMENT", "{path}: {e}");
    }
    assert_eq!(
        s.gemini.request_count(),
        0,
        "a hostile model reached the upstream: {:?}",
        s.gemini
            .requests()
            .iter()
            .map(|r| r.path_and_query.clone())
            .collect::<Vec<_>>()
    );
    // The same model, well formed, goes up on the path the gateway built.
    let r = gemini_post(&s, "/v1beta/models/gemini-2.0-flash:generateContent").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = s.gemini.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    // Percent-encoded allowed characters are the same model.
    let r = gemini_post(&s, "/v1beta/models/gemini%2D2.0-flash:generateContent").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = s.gemini.last_request().unwrap();
    assert_eq!(
        up.path_and_query,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
}

#[tokio::test]
async fn no_client_credential_leaves_in_the_query_in_any_spelling() {
    let s = Scenario::start().await;
    let key = s.key.as_str();
    let secret = &key[key.len() - 12..];
    let stream = "/v1beta/models/gemini-2.0-flash:streamGenerateContent";
    // (query sent, query the upstream must see)
    let cases = [
        (format!("alt=sse;key={key}"), ""),
        (format!("key={key};alt=sse"), ""),
        (format!("alt=sse&%6Bey={key}"), "?alt=sse"),
        (format!("alt=sse&%6b%65%79={key}"), "?alt=sse"),
        (format!("alt=sse&key={key}&key={key}"), "?alt=sse"),
        (format!("alt=sse&KEY={key}&Key={key}"), "?alt=sse"),
        (
            format!("alt=sse&api_key={key}&access_token={key}"),
            "?alt=sse",
        ),
        (format!("key={key}&alt=sse&x={key}"), "?alt=sse"),
        (format!("alt={key}"), ""),
        (format!("alt=sse%26key%3D{key}"), ""),
        (format!("%61lt=sse&key={key}"), "?alt=sse"),
        ("alt=sse&alt=json".to_owned(), "?alt=sse&alt=json"),
        ("alt=sse".to_owned(), "?alt=sse"),
    ];
    for (query, _) in &cases {
        let r = gemini_post(&s, &format!("{stream}?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
    }
    let seen = s.gemini.requests();
    assert_eq!(seen.len(), cases.len());
    for ((query, want), up) in cases.iter().zip(&seen) {
        assert!(
            !up.raw_head.contains(secret),
            "{query}: the gateway key went upstream: {}",
            up.raw_head
        );
        assert_eq!(up.path_and_query, format!("{stream}{want}"), "{query}");
    }

    // Anthropic: Claude Code's `?beta=true` goes up, nothing else does.
    let anthropic = [
        (format!("beta=true&key={key}"), "?beta=true"),
        (format!("beta=true;x-api-key={key}"), ""),
        (format!("x-api-key={key}&api_key={key}"), ""),
    ];
    for (query, _) in &anthropic {
        let path = format!("/v1/messages?{query}");
        let headers = [("x-api-key", key), ("anthropic-version", "2023-06-01")];
        let body = common::messages_body("claude-sonnet-4-5");
        let r = request(s.gw.proxy_addr, "POST", &path, &headers, body.as_bytes()).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text());
    }
    for ((query, want), up) in anthropic.iter().zip(s.anthropic.requests()) {
        assert!(!up.raw_head.contains(secret), "{query}: {}", up.raw_head);
        assert_eq!(up.path_and_query, format!("/v1/messages{want}"), "{query}");
    }

    // OpenAI's endpoints take no query: none goes up.
    let r =
        s.gw.post(
            &format!("/v1/chat/completions?key={key}&api-version=1&x=y"),
            key,
            common::CHAT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = s.openai.last_request().unwrap();
    assert_eq!(up.path_and_query, "/v1/chat/completions");
    assert!(!up.raw_head.contains(secret));
}

#[tokio::test]
async fn refusals_without_a_key_are_counted_not_stored() {
    let s = Scenario::start().await;
    let addr = s.gw.proxy_addr;
    let body = common::CHAT.as_bytes();
    for _ in 0..10 {
        let r = request(addr, "POST", "/v1/chat/completions", &[], body).await;
        assert_eq!(r.status, 401);
        let r = s.gw.chat("tg_nope_nope", body).await;
        assert_eq!(r.status, 401);
        let r =
            s.gw.messages("sk-ant-nope", common::messages_body("claude-x"))
                .await;
        assert_eq!(r.status, 401);
    }
    // A key's own refusal keeps its row, as every request by a key does.
    let r = s.gw.chat(&s.key, common::chat_body("llama-3")).await;
    assert_eq!(r.status, 404);
    assert_eq!(s.gw.chat(&s.key, body).await.status, 200);
    let events = s.gw.usage_events_after(2).await;
    let kinds: Vec<(String, u64)> = events
        .iter()
        .map(|e| (e["key_id"].to_string(), e["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        events.len(),
        2,
        "only the key's requests are rows: {kinds:?}"
    );
    assert!(events.iter().all(|e| e["key_id"].is_string()), "{kinds:?}");
    let m = s.gw.metrics().await;
    assert_eq!(
        m.value("tollgate_unauthenticated_refusals_total{reason=\"missing_key\"}"),
        Some(10.0),
        "{}",
        m.text()
    );
    assert_eq!(
        m.value("tollgate_unauthenticated_refusals_total{reason=\"invalid_key\"}"),
        Some(20.0)
    );
}

#[tokio::test]
async fn model_names_are_bounded_and_never_echoed_or_labelled_raw() {
    let s = Scenario::start().await;
    let key = s.key.as_str();
    let huge = format!("gpt-{}", "q".repeat(1024 * 1024));
    let long = format!("gpt-{}", "q".repeat(253)); // 257 bytes
    let longest = format!("gpt-{}", "q".repeat(252)); // 256 bytes: still a name
    for model in [&huge, &long] {
        let r = s.gw.chat(key, common::chat_body(model)).await;
        assert_eq!(r.status, 400, "{}", r.text().len());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        assert!(
            r.body.len() < 600,
            "the refusal echoes {} bytes",
            r.body.len()
        );
        let r = s.gw.messages(key, common::messages_body(model)).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
        assert!(r.body.len() < 600);
    }
    let path = format!("/v1beta/models/gemini-{}:generateContent", "q".repeat(300));
    let r = gemini_post(&s, &path).await;
    assert_eq!(r.status, 400);
    assert!(r.body.len() < 600);
    let r = s.gw.chat(key, common::chat_body(&longest)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Control characters (raw CR and NUL were seen in /metrics): refused, not routed.
    for model in ["gpt-4o\\r\\nx", "gpt-4o\\u0000", "gpt-\\u0085"] {
        let r = s.gw.chat(key, common::chat_body(model)).await;
        assert_eq!(r.status, 400, "{model}: {}", r.text());
        assert!(!r.text().contains('\r') && !r.text().contains('\0'));
    }
    let r = s.gw.chat(key, common::chat_body("llama-3")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        s.openai.request_count(),
        1,
        "only the 256-byte name went up"
    );

    // Nothing long or raw was stored, logged or labelled.
    let events = s.gw.usage_events_after(9).await;
    assert_eq!(events.len(), 9);
    for e in &events {
        let requested = e["model_requested"].as_str().unwrap_or("");
        assert!(
            requested.len() <= 256,
            "a stored name of {} bytes",
            requested.len()
        );
        assert!(!requested.contains(['\r', '\0']));
    }
    let run = "q".repeat(300);
    assert!(
        !s.gw.logs().contains(&run),
        "a log line holds a long model name"
    );
    let m = s.gw.metrics().await;
    assert!(
        !m.text().contains(['\r', '\0']) && !m.text().contains("llama-3"),
        "{}",
        m.text()
    );
    assert!(!m.text().contains(&run));
    // Unrouted and refused requests share one fixed label; routed ones carry theirs.
    let unrouted = m.sum("tollgate_requests_total", &["model=\"unrouted\""]);
    assert_eq!(unrouted, 8.0, "{}", m.text());
    let routed = m.sum(
        "tollgate_requests_total",
        &[&format!("model=\"{longest}\"")],
    );
    assert_eq!(routed, 0.0, "a 256-byte name is too long for a label");
    assert_eq!(m.sum("tollgate_requests_total", &["model=\"other\""]), 1.0);
}

/// The gateway's limit on a request head.
const HEAD_LIMIT: usize = 64 * 1024;

#[tokio::test]
async fn a_request_head_past_64_kib_is_refused_while_reading() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A head deadline far away: only the size can end these connections.
    let s = Scenario::start_with(|c| c.server("header_timeout_ms", 60_000)).await;
    // An unterminated head of exactly the limit: the gateway cannot have read more than
    // that before answering (no more was sent), whatever the machine's memory; before,
    // it waited for up to a megabyte.
    for path in [
        "/v1/chat/completions",
        "/v1beta/models/gemini-2.0-flash:generateContent",
    ] {
        let mut conn = tokio::net::TcpStream::connect(s.gw.proxy_addr)
            .await
            .unwrap();
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: x\r\nx-pad: ").into_bytes();
        head.resize(HEAD_LIMIT, b'a');
        conn.write_all(&head).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_to_end(&mut answer),
        )
        .await;
        assert!(read.is_ok(), "{path}: no answer to a head past the limit");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 431 "),
            "{path}: {}",
            answer.chars().take(300).collect::<String>()
        );
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let e: serde_json::Value = serde_json::from_str(body).unwrap();
        if path.starts_with("/v1beta") {
            assert_eq!(e["error"]["status"], "INVALID_ARGUMENT", "{e}");
        } else {
            assert_eq!(e["error"]["type"], "invalid_request_error", "{e}");
        }
    }
    // A head just under the limit is served.
    let pad = "a".repeat(HEAD_LIMIT - 1024);
    let auth = format!("Bearer {}", s.key);
    let headers = [("authorization", auth.as_str()), ("x-pad", pad.as_str())];
    let r = request(
        s.gw.proxy_addr,
        "POST",
        "/v1/chat/completions",
        &headers,
        common::CHAT.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = s.gw.metrics().await;
    assert_eq!(
        m.value("tollgate_connections_refused_total{reason=\"head_too_large\"}"),
        Some(2.0),
        "{}",
        m.text()
    );
}
