//! Gemini in the mock: `models/{model}:generateContent` (streaming with `alt=sse`),
//! `:streamGenerateContent` and `:countTokens`, under `/v1beta/` and `/v1/` as the real
//! API serves them, the model named by the path rather than the body, the
//! `{"error": {code, message, status}}` envelope with Google's status names, and the
//! `\r\n\r\n`-separated stream whose last chunk carries `finishReason`.

use serde_json::Value;

use super::dialect::{header, Classified, Dialect, Endpoint};

const GENERATE: Endpoint = Endpoint::new(
    Dialect::Gemini,
    "generate_content",
    "gemini/generate.json",
    Some("gemini/stream.sse"),
);
const STREAM_GENERATE: Endpoint = Endpoint::new(
    Dialect::Gemini,
    "stream_generate_content",
    "gemini/generate.json",
    Some("gemini/stream.sse"),
);

const COUNT_TOKENS: Endpoint = Endpoint::new(
    Dialect::Gemini,
    "count_tokens",
    "gemini/count_tokens.json",
    None,
);

pub(super) fn classify(path: &str, query: &str) -> Option<Classified> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() {
        return None;
    }
    let (endpoint, stream) = match method {
        "generateContent" => (GENERATE, query.split('&').any(|kv| kv == "alt=sse")),
        "streamGenerateContent" => (STREAM_GENERATE, true),
        "countTokens" => (COUNT_TOKENS, false),
        _ => return None,
    };
    Some(Classified {
        endpoint,
        path_model: Some(model.to_owned()),
        path_stream: Some(stream),
    })
}

pub(super) fn error(status: u16, message: &str) -> Value {
    let st = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    serde_json::json!({"error": {"code": status, "message": message, "status": st}})
}

pub(super) fn content_type(sse: bool) -> &'static str {
    if sse {
        "text/event-stream"
    } else {
        "application/json; charset=UTF-8"
    }
}

pub(super) fn headers() -> Vec<(String, String)> {
    vec![
        header("vary", "Origin, X-Origin, Referer"),
        header("server", "scaffolding on HTTPServer2"),
        header("server-timing", "gfet4t7; dur=412"),
    ]
}

pub(super) fn delta_text(v: &Value) -> Option<&Value> {
    if v.pointer("/candidates/0/finishReason").is_some() {
        return None;
    }
    v.pointer("/candidates/0/content/parts/0/text")
}
