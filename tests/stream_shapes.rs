//! Stream shapes that must be metered like the usual ones: Gemini's JSON-array stream
//! (`:streamGenerateContent` without `alt=sse`), and OpenAI streams whose client sent
//! `stream_options` without asking for usage (`null`, `[]`, `{}`): Tollgate asks for it,
//! bills it, and the client gets exactly the bytes it would have got without the addition.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::http::request;
use common::mock::{fixture, strip_usage_chunk};
use common::{Gateway, GatewayBuilder, MockUpstream, Upstream};
use serde_json::Value;

/// `(input, cache_read, cache_write, output, reasoning)` of a usage row.
fn tokens(row: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| row[k].as_u64().unwrap();
    (
        n("input_tokens"),
        n("cache_read_tokens"),
        n("cache_write_tokens"),
        n("output_tokens"),
        n("reasoning_tokens"),
    )
}

/// The rows of `GET /admin/usage?by=model` once `n` events are stored.
async fn by_model(gw: &Gateway, admin: &str, n: u64) -> Vec<Value> {
    let doc = gw.usage_after(admin, "model", n).await;
    doc["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], model: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["group"] == model)
        .unwrap_or_else(|| panic!("no row {model} in {rows:?}"))
}

#[tokio::test]
async fn gemini_json_array_streams_are_metered_like_sse_ones() {
    let g = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .upstream(Upstream::gemini("ge", &g))
        .route(&["gemini-*"], &["ge"])
        .user("root", "admin")
        .start_with_key("alice");
    let admin = gw.create_key("root", &[]);
    let auth = [("x-goog-api-key", key.as_str())];

    let array = request(
        gw.proxy_addr,
        "POST",
        "/v1beta/models/gemini-2.5-flash-json-array:streamGenerateContent",
        &auth,
        br#"{"contents":[]}"#,
    )
    .await;
    assert_eq!(array.status, 200, "{}", array.text());
    assert_eq!(
        array.body,
        fixture("gemini/stream_array.json"),
        "the array passes byte for byte"
    );
    assert_eq!(g.hits("gemini/stream_array.json"), 1);
    let sse = request(
        gw.proxy_addr,
        "POST",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        &auth,
        br#"{"contents":[]}"#,
    )
    .await;
    assert_eq!(sse.status, 200);

    let rows = by_model(&gw, &admin, 2).await;
    // tests/fixtures/README.md: the last usageMetadata of the stream.
    let want = (283, 1024, 0, 250, 211);
    for model in ["gemini-2.5-flash-json-array", "gemini-2.5-flash"] {
        let r = row(&rows, model);
        assert_eq!(tokens(r), want, "{model}");
        assert_eq!(
            r["estimated_requests"], 0,
            "{model}: reported, not estimated"
        );
    }
}

#[tokio::test]
async fn stream_options_without_include_usage_still_bill_and_the_client_sees_no_trace() {
    let o = MockUpstream::start().await;
    let (gw, key) = GatewayBuilder::new()
        .only_upstream(Upstream::openai("o", &o))
        .user("root", "admin")
        .start_with_key("alice");
    let admin = gw.create_key("root", &[]);
    // What the provider sends a client that did not ask: no usage chunk, no usage field.
    let unasked = strip_usage_chunk(&fixture("openai/chat.sse"));

    let cases = [
        ("o4-mini-usage-null-a", r#","stream_options":null"#),
        ("o4-mini-usage-null-b", r#","stream_options":[]"#),
        ("o4-mini-usage-null-c", r#","stream_options":{}"#),
        ("o4-mini-usage-null-d", ""),
    ];
    for (model, options) in cases {
        let body = format!(r#"{{"model":"{model}","messages":[],"stream":true{options}}}"#);
        let r = gw.chat(&key, &body).await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let sent = o.last_request().unwrap();
        assert_eq!(
            sent.json()["stream_options"]["include_usage"],
            true,
            "{model}: Tollgate asked for usage"
        );
        assert!(
            String::from_utf8_lossy(&sent.response_body).contains(r#","usage":null}"#),
            "{model}: the provider added the field"
        );
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            String::from_utf8_lossy(&unasked),
            "{model}: the client gets what it would have got without the addition"
        );
    }

    let rows = by_model(&gw, &admin, cases.len() as u64).await;
    for (model, _) in cases {
        let r = row(&rows, model);
        // tests/fixtures/README.md: openai/chat.sse's usage chunk.
        assert_eq!(tokens(r), (53, 1152, 0, 138, 128), "{model}");
        assert_eq!(
            r["estimated_requests"], 0,
            "{model}: billed from the report"
        );
    }
}
