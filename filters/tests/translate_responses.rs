//! Whole (non-streamed) answers and errors through every translator pair, from
//! recorded provider responses: content, tool calls, finish reasons and usage in
//! disjoint buckets (checklist item 6), and error statuses, envelopes and
//! `retry-after` (item 14).

// Helpers outside `#[test]` functions may panic too: that is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::*;
use tollgate_filters::translate::response::ResponseTranslator;
use tollgate_filters::translate::Wire;

fn whole(upstream: Wire, client: Wire, name: &str) -> Value {
    whole_body(upstream, client, name, &fixture(name))
}

/// [`whole`] of `body` (`name` says which, in failures).
fn whole_body(upstream: Wire, client: Wire, name: &str, body: &[u8]) -> Value {
    let mut t = ResponseTranslator::new(exchange(client, upstream, false));
    let head = t.head(200, Some("application/json"));
    assert_eq!(
        (head.status, head.content_type, head.error),
        (200, "application/json", false)
    );
    let mut out = Vec::new();
    let (a, b) = body.split_at(body.len() / 2);
    t.body(a, false, &mut out);
    assert!(out.is_empty(), "a whole answer is translated at its end");
    t.body(b, true, &mut out);
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{name} -> {client:?}: {e}"))
}

/// Every recorded answer reads in every other client dialect, with the fields its SDK
/// requires.
#[test]
fn every_recorded_answer_in_every_client_dialect() {
    let mut n = 0;
    for &(upstream, name) in ANSWERS {
        for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
            let v = whole(upstream, client, name);
            let ok = match client {
                Wire::Chat => {
                    v["object"] == "chat.completion"
                        && v["choices"][0]["finish_reason"].is_string()
                        && v["usage"]["total_tokens"].is_u64()
                }
                Wire::Messages => {
                    v["type"] == "message"
                        && v["stop_reason"].is_string()
                        && v["usage"]["input_tokens"].is_u64()
                }
                Wire::Gemini => {
                    v["candidates"][0]["finishReason"].is_string()
                        && v["usageMetadata"]["totalTokenCount"].is_u64()
                }
                Wire::Responses => {
                    v["object"] == "response"
                        && v["status"].is_string()
                        && v["usage"]["total_tokens"].is_u64()
                        && v["store"] == false
                }
            };
            assert!(ok, "{name} -> {client:?}: {v}");
            n += 1;
        }
    }
    assert_eq!(n, 24);
}

/// Checklist item 6: usage per pair, bucket by bucket (TRANSLATION_NOTES 3.3).
#[test]
fn usage_buckets_per_pair() {
    // OpenAI: 1117 prompt (1024 cached), 246 completion (192 reasoning).
    let a = whole(Wire::Chat, Wire::Messages, "root:openai/chat.json");
    assert_eq!(
        a["usage"],
        json!({"input_tokens": 93, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 246})
    );
    let g = whole(Wire::Chat, Wire::Gemini, "root:openai/chat.json");
    assert_eq!(
        g["usageMetadata"],
        json!({"promptTokenCount": 1117, "cachedContentTokenCount": 1024, "candidatesTokenCount": 54, "thoughtsTokenCount": 192, "totalTokenCount": 1363})
    );
    let r = whole(Wire::Chat, Wire::Responses, "root:openai/chat.json");
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 1117, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 246, "output_tokens_details": {"reasoning_tokens": 192}, "total_tokens": 1363})
    );
    // Anthropic: 21 uncached + 2048 read + 1536 written, 187 out.
    let o = whole(Wire::Messages, Wire::Chat, "root:anthropic/messages.json");
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 3605, "completion_tokens": 187, "total_tokens": 3792, "prompt_tokens_details": {"cached_tokens": 2048}})
    );
    let g = whole(Wire::Messages, Wire::Gemini, "root:anthropic/messages.json");
    assert_eq!(
        (
            g["usageMetadata"]["promptTokenCount"].as_u64(),
            g["usageMetadata"]["cachedContentTokenCount"].as_u64()
        ),
        (Some(3605), Some(2048))
    );
    // Gemini: 2061 prompt (2048 cached), 52 candidates + 324 thoughts.
    let o = whole(Wire::Gemini, Wire::Chat, "root:gemini/generate.json");
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 2061, "completion_tokens": 376, "total_tokens": 2437, "prompt_tokens_details": {"cached_tokens": 2048}, "completion_tokens_details": {"reasoning_tokens": 324}})
    );
    let a = whole(Wire::Gemini, Wire::Messages, "root:gemini/generate.json");
    assert_eq!(
        a["usage"],
        json!({"input_tokens": 13, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 376})
    );
    // One-hour cache writes keep their split for Anthropic-shaped usage.
    let a = whole(
        Wire::Messages,
        Wire::Gemini,
        "anthropic/thinking_tools.json",
    );
    assert_eq!(a["usageMetadata"]["promptTokenCount"], 312 + 2048 + 4096);
}

/// Tool calls, thinking and finish reasons of whole answers.
#[test]
fn tool_calls_thinking_and_finish_reasons() {
    let a = whole(Wire::Chat, Wire::Messages, "openai/parallel_tools.json");
    assert_eq!(
        a["content"],
        json!([
        {"type": "tool_use", "id": "call_Xq1bN7pR2sT4", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_Yw3cM8qS5tU6", "name": "get_weather", "input": {"city": "Tokyo"}}])
    );
    assert_eq!(a["stop_reason"], "tool_use");
    let g = whole(Wire::Chat, Wire::Gemini, "openai/parallel_tools.json");
    assert_eq!(
        g["candidates"][0]["content"]["parts"][1]["functionCall"]["args"],
        json!({"city": "Tokyo"})
    );
    assert_eq!(g["candidates"][0]["finishReason"], "STOP");
    let r = whole(Wire::Chat, Wire::Responses, "openai/parallel_tools.json");
    assert_eq!(r["output"][1]["call_id"], "call_Yw3cM8qS5tU6");

    let o = whole(Wire::Messages, Wire::Chat, "anthropic/thinking_tools.json");
    let m = &o["choices"][0]["message"];
    assert_eq!(
        (
            m["content"].as_str(),
            o["choices"][0]["finish_reason"].as_str()
        ),
        (Some("Checking both cities."), Some("tool_calls"))
    );
    assert_eq!(m["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(m["reasoning_content"], "Two cities, two calls.");
    let g = whole(
        Wire::Messages,
        Wire::Gemini,
        "anthropic/thinking_tools.json",
    );
    let parts = g["candidates"][0]["content"]["parts"].as_array().unwrap();
    assert!(parts[0]["thoughtSignature"]
        .as_str()
        .unwrap()
        .starts_with("ant:EqQB"));
    assert!(
        parts[1]["thoughtSignature"]
            .as_str()
            .unwrap()
            .starts_with("antr:EmwK"),
        "redacted thinking carried"
    );
    let r = whole(
        Wire::Messages,
        Wire::Responses,
        "anthropic/thinking_tools.json",
    );
    assert_eq!(
        r["output"][0]["summary"][0]["text"],
        "Two cities, two calls."
    );
    assert_eq!(r["output"][2]["type"], "message");

    let a = whole(Wire::Gemini, Wire::Messages, "gemini/thinking_tools.json");
    assert_eq!(
        a["content"][2]["signature"],
        "gem:CiQB0e2Kb7xQ1mW3nYv8tZ4rLp6sHd9cFg2jKa5uEi0oBqXyTlM="
    );
    assert_eq!(a["content"][3]["id"], "call_kZ9gaP3xEu6z1dkP8YqW4Ac_0");
    let o = whole(Wire::Gemini, Wire::Chat, "root:gemini/generate.json");
    assert_eq!(
        o["choices"][0]["message"]["content"],
        "Thinking tokens are billed as output."
    );
    assert_eq!(o["choices"][0]["finish_reason"], "stop");
}

/// What some OpenAI-compatible hosts answer: calls without an id (named by their place,
/// as in a stream), arguments as the object itself, and `stop` as the reason (as OpenAI
/// says for a call it was told to make). Each client gets its calls, and an Anthropic
/// client `tool_use`, on which its SDK's tool runner goes on.
#[test]
fn compatible_hosts_calls_without_ids_or_with_object_arguments() {
    let body = br#"{"object":"chat.completion","created":1,"model":"llama3","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":{"city":"Paris"}}},{"id":null,"function":{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}}]},"finish_reason":"stop"}]}"#;
    let want = [
        ("call_0", "get_weather", json!({"city": "Paris"})),
        ("call_1", "get_time", json!({"tz": "CET"})),
    ];
    let v = whole_body(Wire::Chat, Wire::Messages, "no ids", body);
    let got: Vec<(&str, &str, Value)> = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "tool_use", "{v}");
            (
                b["id"].as_str().unwrap(),
                b["name"].as_str().unwrap(),
                b["input"].clone(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(v["stop_reason"], "tool_use");
    // `stop` without a call stays the end of the turn.
    let text = br#"{"object":"chat.completion","created":1,"model":"llama3","choices":[{"index":0,"message":{"role":"assistant","content":"Hi."},"finish_reason":"stop"}]}"#;
    let v = whole_body(Wire::Chat, Wire::Messages, "text", text);
    assert_eq!(v["stop_reason"], "end_turn", "{v}");
    let v = whole_body(Wire::Chat, Wire::Responses, "no ids", body);
    let got: Vec<(&str, &str, Value)> = v["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["type"], "function_call", "{v}");
            (
                item["call_id"].as_str().unwrap(),
                item["name"].as_str().unwrap(),
                serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

fn error(
    upstream: Wire,
    client: Wire,
    status: u16,
    retry_after: Option<&str>,
    name: &str,
) -> (u16, Option<String>, Value) {
    let t = ResponseTranslator::new(exchange(client, upstream, false));
    let e = t.error(status, retry_after, &fixture(name));
    assert_eq!(e.upstream_status, status);
    (
        e.status,
        e.retry_after,
        serde_json::from_slice(&e.body).unwrap(),
    )
}

/// Checklist item 14 and section 5.1: status, envelope and `retry-after` per client.
#[test]
fn errors_keep_status_message_and_retry_after() {
    for client in [Wire::Chat, Wire::Messages, Wire::Responses] {
        let (status, retry, _) = error(
            Wire::Gemini,
            client,
            429,
            None,
            "root:gemini/error_429.json",
        );
        assert_eq!(
            (status, retry.as_deref()),
            (429, Some("1")),
            "RetryInfo 1s -> {client:?}"
        );
    }
    for client in [Wire::Chat, Wire::Gemini, Wire::Responses] {
        let (status, retry, v) = error(
            Wire::Messages,
            client,
            429,
            Some("7"),
            "root:anthropic/error_429.json",
        );
        assert_eq!((status, retry.as_deref()), (429, Some("7")));
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("This request would exceed the rate limit"),
            "the upstream's text, unchanged"
        );
    }
    let (status, retry, v) = error(
        Wire::Messages,
        Wire::Chat,
        529,
        Some("3"),
        "anthropic/error_529.json",
    );
    assert_eq!(
        (status, retry.as_deref(), v["error"]["type"].as_str()),
        (503, Some("3"), Some("server_error"))
    );
    let (status, _, v) = error(
        Wire::Chat,
        Wire::Messages,
        500,
        None,
        "root:openai/error_500.json",
    );
    assert_eq!(
        (status, v["type"].as_str(), v["error"]["type"].as_str()),
        (500, Some("error"), Some("api_error"))
    );
    let (status, _, v) = error(
        Wire::Chat,
        Wire::Gemini,
        400,
        None,
        "root:openai/error_400.json",
    );
    assert_eq!(
        (
            status,
            v["error"]["status"].as_str(),
            v["error"]["code"].as_u64()
        ),
        (400, Some("INVALID_ARGUMENT"), Some(400))
    );
    let (_, _, v) = error(
        Wire::Gemini,
        Wire::Messages,
        500,
        None,
        "root:gemini/error_500.json",
    );
    assert_eq!(v["error"]["type"], "api_error");
}

/// The error path through the body calls: the head says error, the body is the
/// client's envelope.
#[test]
fn error_bodies_through_the_body_phase() {
    let mut t = ResponseTranslator::new(exchange(Wire::Messages, Wire::Gemini, true));
    let head = t.head(429, Some("application/json"));
    assert_eq!(
        (head.status, head.content_type, head.error),
        (429, "application/json", true)
    );
    let mut out = Vec::new();
    t.body(&fixture("root:gemini/error_429.json"), true, &mut out);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let mut t = ResponseTranslator::new(exchange(Wire::Chat, Wire::Messages, false));
    assert_eq!(t.head(529, None).status, 503);
}

/// A Mistral reasoning model's whole answer: `content` as typed chunks, thinking among
/// them, a citation chunk (no counterpart) between two texts.
#[test]
fn mistral_typed_content_reads_as_thinking_and_text() {
    const THOUGHT: &str = "The user wants the weather in Paris. I call the tool.";
    let name = "openai/mistral_reasoning.json";
    let m = whole(Wire::Chat, Wire::Messages, name);
    assert_eq!(
        m["content"],
        json!([
            {"type": "thinking", "thinking": THOUGHT, "signature": ""},
            {"type": "text", "text": "Checking Paris"},
            {"type": "text", "text": " now."},
            {"type": "tool_use", "id": "Xy7pQ2mZk", "name": "get_weather", "input": {"city": "Paris"}}
        ])
    );
    assert_eq!(m["stop_reason"], "tool_use");
    assert_eq!(m["usage"]["output_tokens"], 65);

    let r = whole(Wire::Chat, Wire::Responses, name);
    assert_eq!(r["output"][0]["type"], "reasoning");
    assert_eq!(r["output"][0]["summary"][0]["text"], THOUGHT);
    assert_eq!(r["output"][1]["content"][0]["text"], "Checking Paris now.");
    assert_eq!(r["output"][2]["call_id"], "Xy7pQ2mZk");

    let g = whole(Wire::Chat, Wire::Gemini, name);
    let parts = &g["candidates"][0]["content"]["parts"];
    assert_eq!(parts[0], json!({"text": THOUGHT, "thought": true}));
    assert_eq!(parts[1]["text"], "Checking Paris");
}
