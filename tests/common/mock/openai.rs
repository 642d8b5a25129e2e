//! OpenAI in the mock: four endpoints (chat, completions, embeddings, responses), the
//! `{"error": {message, type, param, code}}` envelope, `openai-*` and `x-ratelimit-*`
//! headers, and the usage-only chunk (`"choices": []`) a chat or completions stream
//! carries only when the request asked for `stream_options.include_usage`.

use serde_json::Value;

use super::dialect::{header, Classified, Dialect, Endpoint};
use super::sse::event_json;

const fn openai(name: &'static str, json: &'static str, sse: Option<&'static str>) -> Endpoint {
    Endpoint::new(Dialect::OpenAi, name, json, sse)
}

const CHAT: Endpoint = openai(
    "chat_completions",
    "openai/chat.json",
    Some("openai/chat.sse"),
);
const COMPLETIONS: Endpoint = openai(
    "completions",
    "openai/completions.json",
    Some("openai/completions.sse"),
);
const EMBEDDINGS: Endpoint = openai("embeddings", "openai/embeddings.json", None);
const RESPONSES: Endpoint = openai(
    "responses",
    "openai/responses.json",
    Some("openai/responses.sse"),
);

pub(super) fn classify(path: &str) -> Option<Classified> {
    let endpoint = match path {
        "/v1/chat/completions" => CHAT,
        "/v1/completions" => COMPLETIONS,
        "/v1/embeddings" => EMBEDDINGS,
        "/v1/responses" => RESPONSES,
        _ => return None,
    };
    Some(Classified::by_body(endpoint))
}

pub(super) fn error(status: u16, message: &str) -> Value {
    let kind = if status >= 500 {
        "server_error"
    } else {
        "invalid_request_error"
    };
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
}

pub(super) fn content_type(sse: bool) -> &'static str {
    if sse {
        "text/event-stream; charset=utf-8"
    } else {
        "application/json"
    }
}

pub(super) fn headers() -> Vec<(String, String)> {
    vec![
        header("openai-organization", "org-mock"),
        header("openai-processing-ms", "7"),
        header("openai-version", "2020-10-01"),
        header("x-ratelimit-limit-requests", "10000"),
        header("x-ratelimit-remaining-requests", "9999"),
        header("x-ratelimit-reset-requests", "6ms"),
    ]
}

pub(super) fn delta_text<'v>(endpoint: &str, v: &'v Value) -> Option<&'v Value> {
    match endpoint {
        "chat_completions" => v.pointer("/choices/0/delta/content"),
        "completions" if v.pointer("/choices/0/finish_reason")?.is_null() => {
            v.pointer("/choices/0/text")
        }
        "responses" if v["type"] == "response.output_text.delta" => v.get("delta"),
        _ => None,
    }
}

/// Whether streams of this endpoint carry the usage-only chunk only when asked (the
/// Responses API always reports usage in its last event).
pub(super) fn usage_chunk_only_when_asked(endpoint: Endpoint) -> bool {
    endpoint == CHAT || endpoint == COMPLETIONS
}

/// Whether this event is OpenAI's usage-only chunk (`"choices":[]` with a `usage`
/// object), sent only with `stream_options.include_usage`.
pub fn is_usage_chunk(event: &[u8]) -> bool {
    event_json(event).is_some_and(|v| {
        v["choices"].as_array().is_some_and(|c| c.is_empty()) && v["usage"].is_object()
    })
}
