//! Anthropic in the mock: messages and token counting, the
//! `{"type": "error", "error": {type, message}}` envelope with Anthropic's error types,
//! `request-id` and `anthropic-ratelimit-*` headers, and `content_block_delta` text.

use serde_json::Value;

use super::dialect::{header, Classified, Dialect, Endpoint};

const MESSAGES: Endpoint = Endpoint::new(
    Dialect::Anthropic,
    "messages",
    "anthropic/messages.json",
    Some("anthropic/messages.sse"),
);
const COUNT_TOKENS: Endpoint = Endpoint::new(
    Dialect::Anthropic,
    "count_tokens",
    "anthropic/count_tokens.json",
    None,
);

pub(super) fn classify(path: &str) -> Option<Classified> {
    let endpoint = match path {
        "/v1/messages" => MESSAGES,
        "/v1/messages/count_tokens" => COUNT_TOKENS,
        _ => return None,
    };
    Some(Classified::by_body(endpoint))
}

pub(super) fn error(status: u16, message: &str) -> Value {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
}

pub(super) fn content_type(sse: bool) -> &'static str {
    if sse {
        "text/event-stream; charset=utf-8"
    } else {
        "application/json"
    }
}

pub(super) fn headers(id: u64) -> Vec<(String, String)> {
    vec![
        header("request-id", &format!("req_mock_{id}")),
        header(
            "anthropic-organization-id",
            "00000000-0000-0000-0000-000000000000",
        ),
        header("anthropic-ratelimit-requests-limit", "50"),
        header("anthropic-ratelimit-requests-remaining", "49"),
        header("anthropic-ratelimit-requests-reset", "2025-06-26T16:00:01Z"),
    ]
}

pub(super) fn delta_text(v: &Value) -> Option<&Value> {
    if v["type"] == "content_block_delta" {
        v.pointer("/delta/text")
    } else {
        None
    }
}
