//! Every error Tollgate answers with, in every dialect, byte for byte: its status, its
//! message, its metric label, `retry-after`, the three error envelopes (whose fields each
//! provider module spells) and the three SSE error events.

use super::*;

/// Every error Tollgate answers with, in the order of [`TABLE`].
fn errors() -> Vec<GatewayError> {
    use GatewayError::*;
    vec![
        BadJson("expected value at line 1".into()),
        MissingModel,
        BadRequest("stream must be a boolean".into()),
        PathTraversal,
        MissingKey,
        InvalidKey,
        RevokedKey("k1".into()),
        ExpiredKey("k2".into()),
        ModelNotAllowed("gpt-4o".into()),
        UnknownModel("nope-1".into()),
        NotFound("/v1/nothing".into()),
        MethodNotAllowed("/v1/messages".into()),
        BodyTimeout,
        BodyTooLarge(1_048_576),
        HeadersTooLarge(65_536),
        RateLimited {
            message: "10 requests per minute".into(),
            retry_after: Some(7),
        },
        BudgetExceeded("the budget of key k1 is spent".into()),
        Internal("no upstream chosen".into()),
        UpstreamUnreachable("openai".into()),
        UpstreamStreamBroken("openai".into()),
        UpstreamTimeout("openai".into()),
    ]
}

/// What each client sees of the errors of [`errors`], one line each: the status, the
/// metric label, OpenAI's `type` and `code`, Anthropic's `error.type`, Gemini's
/// `error.status`, and after `|` the message.
const TABLE: &str = "
400 bad_json               invalid_request_error bad_json               invalid_request_error INVALID_ARGUMENT   | request body is not valid JSON: expected value at line 1
400 missing_model          invalid_request_error missing_model          invalid_request_error INVALID_ARGUMENT   | request body has no \"model\" field
400 bad_request            invalid_request_error bad_request            invalid_request_error INVALID_ARGUMENT   | stream must be a boolean
400 path_traversal         invalid_request_error path_traversal         invalid_request_error INVALID_ARGUMENT   | path refused: dot segments are not allowed
401 missing_key            authentication_error  invalid_api_key        authentication_error  UNAUTHENTICATED    | missing API key
401 invalid_key            authentication_error  invalid_api_key        authentication_error  UNAUTHENTICATED    | invalid API key
401 revoked_key            authentication_error  invalid_api_key        authentication_error  UNAUTHENTICATED    | API key k1 has been revoked
401 expired_key            authentication_error  invalid_api_key        authentication_error  UNAUTHENTICATED    | API key k2 has expired
403 model_not_allowed      permission_error      model_not_allowed      permission_error      PERMISSION_DENIED  | this API key is not allowed to use model 'gpt-4o'
404 unknown_model          invalid_request_error model_not_found        not_found_error       NOT_FOUND          | model 'nope-1' is not served by this gateway
404 not_found              invalid_request_error not_found              not_found_error       NOT_FOUND          | no such endpoint: /v1/nothing
405 method_not_allowed     invalid_request_error method_not_allowed     not_found_error       NOT_FOUND          | method not allowed for /v1/messages
408 body_timeout           invalid_request_error body_timeout           invalid_request_error DEADLINE_EXCEEDED  | timed out reading the request body
413 body_too_large         invalid_request_error body_too_large         request_too_large     INVALID_ARGUMENT   | request body is larger than the limit of 1048576 bytes
431 headers_too_large      invalid_request_error headers_too_large      request_too_large     INVALID_ARGUMENT   | request headers are larger than the limit of 65536 bytes
429 rate_limited           rate_limit_error      rate_limit_exceeded    rate_limit_error      RESOURCE_EXHAUSTED | 10 requests per minute
429 budget_exceeded        rate_limit_error      budget_exceeded        rate_limit_error      RESOURCE_EXHAUSTED | the budget of key k1 is spent
500 internal               api_error             internal               api_error             INTERNAL           | internal error: no upstream chosen
502 upstream_unreachable   api_error             upstream_unreachable   api_error             UNAVAILABLE        | upstream openai is unreachable
502 upstream_stream_broken api_error             upstream_stream_broken api_error             UNAVAILABLE        | upstream openai ended the stream before it was complete
504 upstream_timeout       api_error             upstream_timeout       timeout_error         DEADLINE_EXCEEDED  | upstream openai timed out
";

/// One line of [`TABLE`] with its error.
struct Case {
    error: GatewayError,
    status: u16,
    label: String,
    openai: (String, String),
    anthropic: String,
    gemini: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let lines: Vec<&str> = TABLE.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), errors().len(), "one line per error");
    errors()
        .into_iter()
        .zip(lines)
        .map(|(error, line)| {
            let (fields, message) = line.split_once(" | ").unwrap_or_default();
            let f: Vec<&str> = fields.split_whitespace().collect();
            assert_eq!(f.len(), 6, "{line}");
            Case {
                error,
                status: f[0].parse().unwrap_or_default(),
                label: f[1].into(),
                openai: (f[2].into(), f[3].into()),
                anthropic: f[4].into(),
                gemini: f[5].into(),
                message: message.into(),
            }
        })
        .collect()
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
        let m = quoted(&c.message);
        let (otype, ocode) = &c.openai;
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
