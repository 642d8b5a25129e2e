//! Every error Tollgate answers with, in every dialect, byte for byte: its status, its
//! message, its metric label, `retry-after`, the three error envelopes (whose fields each
//! provider module spells) and the three SSE error events.

use super::*;

/// One error and what each dialect's client must see of it.
struct Case {
    error: GatewayError,
    status: u16,
    message: &'static str,
    label: &'static str,
    /// OpenAI's `type` and `code`.
    openai: (&'static str, &'static str),
    /// Anthropic's `error.type`.
    anthropic: &'static str,
    /// Gemini's `error.status`.
    gemini: &'static str,
}

fn case(
    error: GatewayError,
    status: u16,
    message: &'static str,
    label: &'static str,
    openai: (&'static str, &'static str),
    anthropic: &'static str,
    gemini: &'static str,
) -> Case {
    Case {
        error,
        status,
        message,
        label,
        openai,
        anthropic,
        gemini,
    }
}

fn cases() -> Vec<Case> {
    use GatewayError::*;
    let bad = "invalid_request_error";
    let auth = ("authentication_error", "invalid_api_key");
    vec![
        case(
            BadJson("expected value at line 1".into()),
            400,
            "request body is not valid JSON: expected value at line 1",
            "bad_json",
            (bad, "bad_json"),
            bad,
            "INVALID_ARGUMENT",
        ),
        case(
            MissingModel,
            400,
            "request body has no \"model\" field",
            "missing_model",
            (bad, "missing_model"),
            bad,
            "INVALID_ARGUMENT",
        ),
        case(
            BadRequest("stream must be a boolean".into()),
            400,
            "stream must be a boolean",
            "bad_request",
            (bad, "bad_request"),
            bad,
            "INVALID_ARGUMENT",
        ),
        case(
            PathTraversal,
            400,
            "path refused: dot segments are not allowed",
            "path_traversal",
            (bad, "path_traversal"),
            bad,
            "INVALID_ARGUMENT",
        ),
        case(
            MissingKey,
            401,
            "missing API key",
            "missing_key",
            auth,
            "authentication_error",
            "UNAUTHENTICATED",
        ),
        case(
            InvalidKey,
            401,
            "invalid API key",
            "invalid_key",
            auth,
            "authentication_error",
            "UNAUTHENTICATED",
        ),
        case(
            RevokedKey("k1".into()),
            401,
            "API key k1 has been revoked",
            "revoked_key",
            auth,
            "authentication_error",
            "UNAUTHENTICATED",
        ),
        case(
            ExpiredKey("k2".into()),
            401,
            "API key k2 has expired",
            "expired_key",
            auth,
            "authentication_error",
            "UNAUTHENTICATED",
        ),
        case(
            ModelNotAllowed("gpt-4o".into()),
            403,
            "this API key is not allowed to use model 'gpt-4o'",
            "model_not_allowed",
            ("permission_error", "model_not_allowed"),
            "permission_error",
            "PERMISSION_DENIED",
        ),
        case(
            UnknownModel("nope-1".into()),
            404,
            "model 'nope-1' is not served by this gateway",
            "unknown_model",
            (bad, "model_not_found"),
            "not_found_error",
            "NOT_FOUND",
        ),
        case(
            NotFound("/v1/nothing".into()),
            404,
            "no such endpoint: /v1/nothing",
            "not_found",
            (bad, "not_found"),
            "not_found_error",
            "NOT_FOUND",
        ),
        case(
            MethodNotAllowed("/v1/messages".into()),
            405,
            "method not allowed for /v1/messages",
            "method_not_allowed",
            (bad, "method_not_allowed"),
            "not_found_error",
            "NOT_FOUND",
        ),
        case(
            BodyTimeout,
            408,
            "timed out reading the request body",
            "body_timeout",
            (bad, "body_timeout"),
            bad,
            "DEADLINE_EXCEEDED",
        ),
        case(
            BodyTooLarge(1_048_576),
            413,
            "request body is larger than the limit of 1048576 bytes",
            "body_too_large",
            (bad, "body_too_large"),
            "request_too_large",
            "INVALID_ARGUMENT",
        ),
        case(
            HeadersTooLarge(65_536),
            431,
            "request headers are larger than the limit of 65536 bytes",
            "headers_too_large",
            (bad, "headers_too_large"),
            "request_too_large",
            "INVALID_ARGUMENT",
        ),
        case(
            RateLimited {
                message: "rate limit of 10 requests per minute reached".into(),
                retry_after: Some(7),
            },
            429,
            "rate limit of 10 requests per minute reached",
            "rate_limited",
            ("rate_limit_error", "rate_limit_exceeded"),
            "rate_limit_error",
            "RESOURCE_EXHAUSTED",
        ),
        case(
            BudgetExceeded("the monthly budget of key k1 is spent".into()),
            429,
            "the monthly budget of key k1 is spent",
            "budget_exceeded",
            ("rate_limit_error", "budget_exceeded"),
            "rate_limit_error",
            "RESOURCE_EXHAUSTED",
        ),
        case(
            Internal("no upstream chosen".into()),
            500,
            "internal error: no upstream chosen",
            "internal",
            ("api_error", "internal"),
            "api_error",
            "INTERNAL",
        ),
        case(
            UpstreamUnreachable("openai".into()),
            502,
            "upstream openai is unreachable",
            "upstream_unreachable",
            ("api_error", "upstream_unreachable"),
            "api_error",
            "UNAVAILABLE",
        ),
        case(
            UpstreamStreamBroken("openai".into()),
            502,
            "upstream openai ended the stream before it was complete",
            "upstream_stream_broken",
            ("api_error", "upstream_stream_broken"),
            "api_error",
            "UNAVAILABLE",
        ),
        case(
            UpstreamTimeout("openai".into()),
            504,
            "upstream openai timed out",
            "upstream_timeout",
            ("api_error", "upstream_timeout"),
            "timeout_error",
            "DEADLINE_EXCEEDED",
        ),
    ]
}

/// The message as a JSON string literal (the one with quotes in it is escaped).
fn quoted(message: &str) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

#[test]
fn every_error_has_its_status_message_and_label() {
    for c in cases() {
        let e = &c.error;
        assert_eq!(e.status(), c.status, "{e:?}");
        assert_eq!(e.to_string(), c.message, "{e:?}");
        assert_eq!(e.metric_label(), c.label, "{e:?}");
    }
}

#[test]
fn only_a_rate_limit_carries_a_retry_after() {
    for c in cases() {
        let want = match c.error {
            GatewayError::RateLimited { .. } => Some(7),
            _ => None,
        };
        assert_eq!(c.error.retry_after(), want, "{:?}", c.error);
    }
    let unknown = GatewayError::RateLimited {
        message: "m".into(),
        retry_after: None,
    };
    assert_eq!(unknown.retry_after(), None);
}

#[test]
fn every_error_in_every_envelope_byte_for_byte() {
    for c in cases() {
        let e = &c.error;
        let m = quoted(c.message);
        let (otype, ocode) = c.openai;
        let openai = format!(
            r#"{{"error":{{"code":"{ocode}","message":{m},"param":null,"type":"{otype}"}}}}"#
        );
        let anthropic = format!(
            r#"{{"error":{{"message":{m},"type":"{}"}},"type":"error"}}"#,
            c.anthropic
        );
        let gemini = format!(
            r#"{{"error":{{"code":{},"message":{m},"status":"{}"}}}}"#,
            c.status, c.gemini
        );
        for (dialect, body) in [
            (Dialect::OpenAi, &openai),
            (Dialect::Anthropic, &anthropic),
            (Dialect::Gemini, &gemini),
        ] {
            assert_eq!(
                String::from_utf8_lossy(&e.body(dialect)),
                *body,
                "{e:?} {dialect:?}"
            );
        }
        let events = [
            (Dialect::OpenAi, format!("data: {openai}\n\n")),
            (
                Dialect::Anthropic,
                format!("event: error\ndata: {anthropic}\n\n"),
            ),
            (Dialect::Gemini, format!("data: {gemini}\r\n\r\n")),
        ];
        for (dialect, event) in events {
            assert_eq!(
                String::from_utf8_lossy(&e.sse_event(dialect)),
                event,
                "{e:?} {dialect:?}"
            );
        }
    }
}
