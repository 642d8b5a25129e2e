//! The errors the gateway itself answers with: their status, `retry-after` and metric
//! label, and their one mapping to each client dialect's error envelope (README
//! "Errors"), which each dialect's provider module spells.

use bytes::Bytes;

use crate::providers::Dialect;

/// An error produced by Tollgate (never an upstream's own error, which passes through).
///
/// Messages never contain a secret: at most a model name, a key id or a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("request body has no \"model\" field")]
    MissingModel,
    #[error("{0}")]
    BadRequest(String),
    #[error("path refused: dot segments are not allowed")]
    PathTraversal,
    /// A model name the gateway refuses to route (its message shows a bounded prefix).
    #[error("{0}")]
    InvalidModel(String),
    #[error("missing API key")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("API key {0} has been revoked")]
    RevokedKey(String),
    #[error("API key {0} has expired")]
    ExpiredKey(String),
    #[error("this API key is not allowed to use model '{0}'")]
    ModelNotAllowed(String),
    #[error("model '{0}' is not served by this gateway")]
    UnknownModel(String),
    #[error("no such endpoint: {0}")]
    NotFound(String),
    #[error("method not allowed for {0}")]
    MethodNotAllowed(String),
    #[error("request body is larger than the limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("timed out reading the request body")]
    BodyTimeout,
    #[error("request headers are larger than the limit of {0} bytes")]
    HeadersTooLarge(usize),
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<u64>,
    },
    #[error("{0}")]
    BudgetExceeded(String),
    #[error("upstream {0} is unreachable")]
    UpstreamUnreachable(String),
    #[error("upstream {0} timed out")]
    UpstreamTimeout(String),
    #[error("upstream {0} ended the stream before it was complete")]
    UpstreamStreamBroken(String),
    #[error("upstream {0} answered 101 Switching Protocols, which the gateway never relays")]
    UpstreamSwitchedProtocols(String),
    #[error("the gateway is shutting down and ended this request")]
    ShuttingDown,
    /// A request the translation to its upstream's dialect refuses (CONTRACT section 7):
    /// `param` names the field (OpenAI's `param`); `invalid` when the request is not a
    /// valid one of its own dialect (rather than one with no counterpart upstream).
    #[error("{message}")]
    Untranslatable {
        message: String,
        param: String,
        invalid: bool,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status the client receives.
    pub fn status(&self) -> u16 {
        use GatewayError::*;
        match self {
            BadJson(_) | MissingModel | BadRequest(_) | PathTraversal | InvalidModel(_) => 400,
            Untranslatable { .. } => 400,
            MissingKey | InvalidKey | RevokedKey(_) | ExpiredKey(_) => 401,
            ModelNotAllowed(_) => 403,
            UnknownModel(_) | NotFound(_) => 404,
            MethodNotAllowed(_) => 405,
            BodyTimeout => 408,
            BodyTooLarge(_) => 413,
            HeadersTooLarge(_) => 431,
            RateLimited { .. } | BudgetExceeded(_) => 429,
            Internal(_) => 500,
            UpstreamUnreachable(_) | UpstreamStreamBroken(_) | UpstreamSwitchedProtocols(_) => 502,
            ShuttingDown => 503,
            UpstreamTimeout(_) => 504,
        }
    }

    /// Seconds after which the client may try again (`retry-after`), where known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            GatewayError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        use GatewayError::*;
        match self {
            BadJson(_) => "bad_json",
            MissingModel => "missing_model",
            BadRequest(_) => "bad_request",
            PathTraversal => "path_traversal",
            InvalidModel(_) => "invalid_model",
            MissingKey => "missing_key",
            InvalidKey => "invalid_key",
            RevokedKey(_) => "revoked_key",
            ExpiredKey(_) => "expired_key",
            ModelNotAllowed(_) => "model_not_allowed",
            UnknownModel(_) => "unknown_model",
            NotFound(_) => "not_found",
            MethodNotAllowed(_) => "method_not_allowed",
            BodyTooLarge(_) => "body_too_large",
            BodyTimeout => "body_timeout",
            HeadersTooLarge(_) => "headers_too_large",
            RateLimited { .. } => "rate_limited",
            BudgetExceeded(_) => "budget_exceeded",
            UpstreamUnreachable(_) => "upstream_unreachable",
            UpstreamTimeout(_) => "upstream_timeout",
            UpstreamStreamBroken(_) => "upstream_stream_broken",
            UpstreamSwitchedProtocols(_) => "upstream_switched_protocols",
            ShuttingDown => "shutting_down",
            Untranslatable { .. } => "untranslatable",
            Internal(_) => "internal",
        }
    }

    /// The error body in the client's dialect, as JSON bytes (the envelope is the
    /// dialect's provider module's).
    pub fn body(&self, dialect: Dialect) -> Bytes {
        dialect.error_body(self)
    }

    /// The error as a final server-sent event in the client's dialect, for a stream that
    /// already started: Anthropic's `event: error`, an OpenAI-style error chunk, a Gemini
    /// error object.
    pub fn sse_event(&self, dialect: Dialect) -> Bytes {
        dialect.sse_error_event(self)
    }
}

#[cfg(test)]
mod envelope_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: Bytes) -> serde_json::Value {
        serde_json::from_slice(&b).unwrap_or_default()
    }

    #[test]
    fn each_dialect_has_its_envelope() {
        let e = GatewayError::UnknownModel("nope-1".into());
        let o = parse(e.body(Dialect::OpenAi));
        assert_eq!(o["error"]["type"], "invalid_request_error");
        assert_eq!(o["error"]["code"], "model_not_found");
        assert!(o["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nope-1"));
        let a = parse(e.body(Dialect::Anthropic));
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "not_found_error");
        let g = parse(e.body(Dialect::Gemini));
        assert_eq!(g["error"]["code"], 404);
        assert_eq!(g["error"]["status"], "NOT_FOUND");
    }
}
