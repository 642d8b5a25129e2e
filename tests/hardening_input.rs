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
