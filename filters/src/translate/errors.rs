//! Upstream errors in the client's dialect (TRANSLATION_NOTES 5.1, 5.2): the status the
//! client's SDK picks its exception (and retry) from, the client's envelope around the
//! upstream's own message, and `retry-after` kept or synthesized from Gemini's
//! `RetryInfo`. Anthropic's 529 becomes 503 for OpenAI and Gemini clients (and 503
//! becomes 529 for Anthropic clients, as Anthropic itself answers overload).

use serde_json::{json, Value};

use crate::providers::wire::{anthropic, gemini, openai};

use super::{Pair, Wire};

/// What kind of failure an error is, whichever dialect said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    TooLarge,
    RateLimit,
    /// Out of quota or billing (OpenAI's `insufficient_quota`).
    Quota,
    Server,
    Overloaded,
    Timeout,
}

impl Class {
    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> Class {
        match status {
            401 => Class::Authentication,
            403 => Class::Permission,
            404 => Class::NotFound,
            413 => Class::TooLarge,
            429 => Class::RateLimit,
            503 | 529 => Class::Overloaded,
            504 | 408 => Class::Timeout,
            s if s >= 500 => Class::Server,
            _ => Class::InvalidRequest,
        }
    }

    /// The HTTP status this class is usually answered with.
    pub fn status(self) -> u16 {
        match self {
            Class::InvalidRequest => 400,
            Class::Authentication => 401,
            Class::Permission => 403,
            Class::NotFound => 404,
            Class::TooLarge => 413,
            Class::RateLimit | Class::Quota => 429,
            Class::Server => 500,
            Class::Overloaded => 503,
            Class::Timeout => 504,
        }
    }

    /// Anthropic's error `type`.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            Class::InvalidRequest => "invalid_request_error",
            Class::Authentication => "authentication_error",
            Class::Permission => "permission_error",
            Class::NotFound => "not_found_error",
            Class::TooLarge => "request_too_large",
            Class::RateLimit | Class::Quota => "rate_limit_error",
            Class::Overloaded => "overloaded_error",
            Class::Server | Class::Timeout => "api_error",
        }
    }

    /// OpenAI's error `type` and `code`.
    pub fn openai_type_code(self) -> (&'static str, Option<&'static str>) {
        match self {
            Class::InvalidRequest | Class::TooLarge => ("invalid_request_error", None),
            Class::Authentication => ("invalid_request_error", Some("invalid_api_key")),
            Class::Permission => ("permission_error", None),
            Class::NotFound => ("invalid_request_error", Some("model_not_found")),
            Class::RateLimit => ("rate_limit_error", Some("rate_limit_exceeded")),
            Class::Quota => ("insufficient_quota", Some("insufficient_quota")),
            Class::Server | Class::Overloaded | Class::Timeout => ("server_error", None),
        }
    }

    /// Gemini's RPC `status` name.
    pub fn gemini_status(self) -> &'static str {
        match self {
            Class::InvalidRequest | Class::TooLarge => "INVALID_ARGUMENT",
            Class::Authentication => "UNAUTHENTICATED",
            Class::Permission => "PERMISSION_DENIED",
            Class::NotFound => "NOT_FOUND",
            Class::RateLimit | Class::Quota => "RESOURCE_EXHAUSTED",
            Class::Server => "INTERNAL",
            Class::Overloaded => "UNAVAILABLE",
            Class::Timeout => "DEADLINE_EXCEEDED",
        }
    }
}

/// An upstream error as read from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub class: Class,
    pub message: String,
    /// Seconds from Gemini's `RetryInfo.retryDelay`, rounded up.
    pub retry_delay: Option<u64>,
}

/// An error for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub status: u16,
    /// `retry-after` for the client (seconds), kept or synthesized.
    pub retry_after: Option<String>,
    /// The upstream's own status, for `x-tollgate-upstream-status`.
    pub upstream_status: u16,
    pub body: Vec<u8>,
}

/// The header the upstream's own status goes in.
pub const UPSTREAM_STATUS_HEADER: &str = "x-tollgate-upstream-status";

/// Translates a whole upstream error response (`retry_after`: the upstream's header).
pub fn translate(pair: Pair, status: u16, retry_after: Option<&str>, body: &[u8]) -> ClientError {
    let err = read(pair.upstream, status, body);
    let retry_after = retry_after
        .map(str::to_owned)
        .or_else(|| err.retry_delay.map(|s| s.to_string()));
    ClientError {
        status: client_status(pair.client, status, err.class),
        retry_after,
        upstream_status: status,
        body: envelope(pair.client, status, &err),
    }
}

/// The status the client gets for an upstream error of `class` (for the header, when
/// the proxy cannot wait for the body: then `class` is [`Class::of_status`]).
pub fn client_status(client: Wire, upstream_status: u16, class: Class) -> u16 {
    match (client, class) {
        (Wire::Messages, Class::Overloaded) => 529,
        (_, Class::Overloaded) => 503,
        (Wire::Gemini, Class::TooLarge) => 400,
        (_, Class::Authentication) => 401,
        _ => upstream_status,
    }
}

/// Reads an error body in `upstream`'s dialect (anything unreadable keeps its text).
pub fn read(upstream: Wire, status: u16, body: &[u8]) -> UpstreamError {
    let by_status = Class::of_status(status);
    let fallback = || UpstreamError {
        class: by_status,
        message: String::from_utf8_lossy(body).trim().to_owned(),
        retry_delay: None,
    };
    let mut err = match upstream {
        Wire::Chat | Wire::Responses => serde_json::from_slice::<openai::ErrorEnvelope>(body)
            .ok()
            .and_then(|e| openai_envelope(e, by_status))
            .unwrap_or_else(fallback),
        Wire::Messages => serde_json::from_slice::<anthropic::ErrorEnvelope>(body)
            .map(|e| anthropic_error(e.error, by_status))
            .unwrap_or_else(|_| fallback()),
        Wire::Gemini => serde_json::from_slice::<gemini::ErrorEnvelope>(body)
            .map(|e| gemini_error(e.error, by_status))
            .unwrap_or_else(|_| fallback()),
    };
    // An SDK shows the message as the error: never an empty one.
    if err.message.trim().is_empty() {
        err.message = format!("the upstream answered HTTP {status} without a message");
    }
    err
}

/// OpenAI's envelope, or a compatible host's message at the top; `None` for a JSON body
/// of neither shape (its text is kept then).
fn openai_envelope(e: openai::ErrorEnvelope, by_status: Class) -> Option<UpstreamError> {
    if let Some(body) = e.error {
        return Some(openai_error(body, by_status));
    }
    let message = e.message.or(e.detail)?;
    let quota = e.kind.as_deref() == Some("insufficient_quota");
    Some(UpstreamError {
        class: if quota { Class::Quota } else { by_status },
        message: message_text(&message),
        retry_delay: None,
    })
}

/// A message given as a string, or as a validation's list of problems (FastAPI's and
/// Mistral's `{"detail":[{"loc":[...],"msg":...}]}`): each problem as `loc: msg`.
fn message_text(v: &Value) -> String {
    match v.get("detail").unwrap_or(v) {
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let lines: Vec<String> = items
                .iter()
                .map(|p| {
                    let msg = p.get("msg").and_then(Value::as_str).unwrap_or("invalid");
                    let loc: Vec<String> = p
                        .get("loc")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|l| match l {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect();
                    match loc.is_empty() {
                        true => msg.to_owned(),
                        false => format!("{}: {msg}", loc.join(".")),
                    }
                })
                .collect();
            lines.join("; ")
        }
        _ => v.to_string(),
    }
}

fn openai_error(e: openai::ErrorBody, by_status: Class) -> UpstreamError {
    let quota = e.kind.as_deref() == Some("insufficient_quota")
        || e.code.as_ref().and_then(Value::as_str) == Some("insufficient_quota");
    UpstreamError {
        class: if quota { Class::Quota } else { by_status },
        message: e.message,
        retry_delay: None,
    }
}

/// Reads an Anthropic error object (the body's, or a stream's `error` event's).
pub fn anthropic_error(e: anthropic::ErrorBody, by_status: Class) -> UpstreamError {
    let class = match e.kind.as_str() {
        "overloaded_error" => Class::Overloaded,
        "rate_limit_error" => Class::RateLimit,
        "authentication_error" => Class::Authentication,
        "permission_error" => Class::Permission,
        "not_found_error" => Class::NotFound,
        "request_too_large" => Class::TooLarge,
        "api_error" => Class::Server,
        "timeout_error" => Class::Timeout,
        "invalid_request_error" => Class::InvalidRequest,
        _ => by_status,
    };
    UpstreamError {
        class,
        message: e.message,
        retry_delay: None,
    }
}

/// Reads a Gemini error object (the body's, or a stream's `error` element's).
pub fn gemini_error(e: gemini::ErrorBody, by_status: Class) -> UpstreamError {
    let class = match e.status.as_deref() {
        _ if e.message.contains("API key not valid") => Class::Authentication,
        Some("UNAUTHENTICATED") => Class::Authentication,
        Some("PERMISSION_DENIED") => Class::Permission,
        Some("NOT_FOUND") => Class::NotFound,
        Some("RESOURCE_EXHAUSTED") => Class::RateLimit,
        Some("UNAVAILABLE") => Class::Overloaded,
        Some("DEADLINE_EXCEEDED") => Class::Timeout,
        Some("INTERNAL") => Class::Server,
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION") => Class::InvalidRequest,
        _ => by_status,
    };
    let retry_delay = e.details.iter().find_map(|d| {
        let is_retry = d
            .get("@type")
            .and_then(Value::as_str)?
            .ends_with("RetryInfo");
        is_retry.then(|| {
            d.get("retryDelay")
                .and_then(Value::as_str)
                .and_then(parse_duration)
        })?
    });
    UpstreamError {
        class,
        message: e.message,
        retry_delay,
    }
}

/// A protobuf duration (`"27s"`, `"1.5s"`) in whole seconds, rounded up.
pub fn parse_duration(s: &str) -> Option<u64> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| secs.ceil() as u64)
}

/// The error in `client`'s envelope.
pub fn envelope(client: Wire, upstream_status: u16, e: &UpstreamError) -> Vec<u8> {
    let status = client_status(client, upstream_status, e.class);
    let v = match client {
        Wire::Chat | Wire::Responses => {
            let (kind, code) = e.class.openai_type_code();
            json!({"error": {"message": e.message, "type": kind, "param": null, "code": code}})
        }
        Wire::Messages => {
            json!({"type": "error", "error": {"type": e.class.anthropic_type(), "message": e.message}})
        }
        Wire::Gemini => {
            json!({"error": {"code": status, "message": e.message, "status": e.class.gemini_status()}})
        }
    };
    v.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compatible hosts' own error shapes give their message: vLLM's top-level string,
    /// Mistral's validation problems, FastAPI's bare `detail`.
    #[test]
    fn compatible_hosts_error_shapes_give_their_message() {
        let mistral = br#"{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted","input":{"include_usage":true}},{"type":"extra_forbidden","loc":["body","messages",0,"user","name"],"msg":"Extra inputs are not permitted"}]},"type":"invalid_request_error","param":null,"code":null}"#;
        for (body, want) in [
            (
                &br#"{"object":"error","message":"This model's maximum context length is 32768 tokens.","type":"BadRequestError","param":null,"code":400}"#[..],
                "This model's maximum context length is 32768 tokens.",
            ),
            (
                mistral,
                "body.stream_options: Extra inputs are not permitted; body.messages.0.user.name: Extra inputs are not permitted",
            ),
            (br#"{"detail":"Not Found"}"#, "Not Found"),
            (
                br#"{"object":"error","message":{"detail":"Unauthorized"},"type":"invalid_request_error"}"#,
                "Unauthorized",
            ),
            (
                br#"{"object":"error","message":{"code":7},"type":"invalid_request_error"}"#,
                r#"{"code":7}"#,
            ),
            (br#"{"detail":[{"msg":"field required"}]}"#, "field required"),
            (br#"{"error":{"message":"Bad key","type":"invalid_request_error"}}"#, "Bad key"),
            (br#"{"unexpected":1}"#, r#"{"unexpected":1}"#),
        ] {
            let e = read(Wire::Chat, 422, body);
            assert_eq!(e.message, want, "{}", String::from_utf8_lossy(body));
            assert_eq!(e.class, Class::of_status(422));
        }
        let quota = read(
            Wire::Chat,
            429,
            br#"{"object":"error","message":"quota","type":"insufficient_quota"}"#,
        );
        assert_eq!(quota.class, Class::Quota);
    }

    /// An upstream error with no message (an empty one, an empty body) still tells
    /// the client's SDK something: the status it came with.
    #[test]
    fn an_error_without_a_message_says_its_status() {
        for (upstream, body) in [
            (
                Wire::Chat,
                &br#"{"error":{"message":"","type":"server_error"}}"#[..],
            ),
            (
                Wire::Messages,
                br#"{"type":"error","error":{"type":"api_error","message":" "}}"#,
            ),
            (
                Wire::Gemini,
                br#"{"error":{"code":503,"message":"","status":"UNAVAILABLE"}}"#,
            ),
            (Wire::Chat, b""),
        ] {
            let e = read(upstream, 503, body);
            assert_eq!(
                e.message,
                "the upstream answered HTTP 503 without a message"
            );
        }
        assert_eq!(read(Wire::Chat, 503, b"busy").message, "busy");
    }

    fn pair(client: Wire, upstream: Wire) -> Pair {
        Pair { client, upstream }
    }

    /// Every status has its class, and every class its usual status.
    #[test]
    fn statuses_and_classes_map_both_ways() {
        use Class::*;
        for (status, class) in [
            (400, InvalidRequest),
            (418, InvalidRequest),
            (401, Authentication),
            (403, Permission),
            (404, NotFound),
            (413, TooLarge),
            (429, RateLimit),
            (503, Overloaded),
            (529, Overloaded),
            (504, Timeout),
            (408, Timeout),
            (500, Server),
            (502, Server),
        ] {
            assert_eq!(Class::of_status(status), class, "{status}");
        }
        let all = [
            InvalidRequest,
            Authentication,
            Permission,
            NotFound,
            TooLarge,
            RateLimit,
            Quota,
            Server,
            Overloaded,
            Timeout,
        ];
        assert_eq!(
            all.map(Class::status),
            [400, 401, 403, 404, 413, 429, 429, 500, 503, 504]
        );
        assert_eq!(client_status(Wire::Gemini, 413, TooLarge), 400);
        assert_eq!(client_status(Wire::Chat, 413, TooLarge), 413);
        assert_eq!(client_status(Wire::Messages, 503, Overloaded), 529);
        assert_eq!(client_status(Wire::Chat, 529, Overloaded), 503);
        assert_eq!(client_status(Wire::Chat, 400, Authentication), 401);
        assert_eq!(client_status(Wire::Chat, 418, InvalidRequest), 418);
    }

    /// Each dialect's error kinds are read as their class, whatever the status said
    /// (a status of another class is sent with each, so only the kind can tell).
    #[test]
    fn error_kinds_are_read_as_their_class() {
        use Class::*;
        for (kind, class) in [
            ("overloaded_error", Overloaded),
            ("rate_limit_error", RateLimit),
            ("authentication_error", Authentication),
            ("permission_error", Permission),
            ("not_found_error", NotFound),
            ("request_too_large", TooLarge),
            ("api_error", Server),
            ("timeout_error", Timeout),
            ("invalid_request_error", InvalidRequest),
        ] {
            let status = if class == Server { 418 } else { 500 };
            let body = json!({"type": "error", "error": {"type": kind, "message": "m"}});
            let e = read(Wire::Messages, status, body.to_string().as_bytes());
            assert_eq!((e.class, e.message.as_str()), (class, "m"), "{kind}");
        }
        for (kind, class) in [
            ("UNAUTHENTICATED", Authentication),
            ("PERMISSION_DENIED", Permission),
            ("NOT_FOUND", NotFound),
            ("RESOURCE_EXHAUSTED", RateLimit),
            ("UNAVAILABLE", Overloaded),
            ("DEADLINE_EXCEEDED", Timeout),
            ("INTERNAL", Server),
            ("INVALID_ARGUMENT", InvalidRequest),
            ("FAILED_PRECONDITION", InvalidRequest),
        ] {
            let status = if class == Server { 418 } else { 500 };
            let body = json!({"error": {"code": status, "message": "m", "status": kind}});
            let e = read(Wire::Gemini, status, body.to_string().as_bytes());
            assert_eq!(e.class, class, "{kind}");
        }
        // OpenAI's quota, by its type or by its code.
        for body in [
            json!({"error": {"message": "m", "type": "insufficient_quota"}}),
            json!({"error": {"message": "m", "type": "x", "code": "insufficient_quota"}}),
        ] {
            let e = read(Wire::Chat, 429, body.to_string().as_bytes());
            assert_eq!(e.class, Quota, "{body}");
        }
        let body = json!({"error": {"message": "m", "type": "x", "code": "y"}});
        assert_eq!(
            read(Wire::Chat, 429, body.to_string().as_bytes()).class,
            RateLimit
        );
    }

    #[test]
    fn durations_are_whole_seconds_rounded_up_and_never_negative() {
        assert_eq!(parse_duration("27s"), Some(27));
        assert_eq!(parse_duration("1.5s"), Some(2));
        assert_eq!(parse_duration("0s"), Some(0));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("infs"), None);
        assert_eq!(parse_duration("5"), None);
    }

    /// Checklist item 14: `retry-after` kept, or synthesized from `RetryInfo`.
    #[test]
    fn retry_after_is_kept_or_synthesized() {
        let gem = br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"6.2s"}]}}"#;
        for client in [Wire::Chat, Wire::Messages, Wire::Responses] {
            let e = translate(pair(client, Wire::Gemini), 429, None, gem);
            assert_eq!((e.status, e.retry_after.as_deref()), (429, Some("7")));
        }
        let ant = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
        let e = translate(pair(Wire::Gemini, Wire::Messages), 429, Some("7"), ant);
        assert_eq!(e.retry_after.as_deref(), Some("7"));
        let v: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["message"], "slow down");
    }

    #[test]
    fn overload_and_bad_keys_take_the_client_status() {
        let ant = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = translate(pair(Wire::Chat, Wire::Messages), 529, Some("3"), ant);
        assert_eq!((e.status, e.upstream_status), (503, 529));
        let v: Value = serde_json::from_slice(&e.body).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
        let gem = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            translate(pair(Wire::Messages, Wire::Gemini), 400, None, gem).status,
            401
        );
        let oai = br#"{"error":{"message":"busy","type":"server_error"}}"#;
        assert_eq!(
            translate(pair(Wire::Messages, Wire::Chat), 503, None, oai).status,
            529
        );
    }
}
