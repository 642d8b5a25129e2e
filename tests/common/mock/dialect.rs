//! What the mock knows of a provider, behind one closed enum: each dialect's module
//! ([`super::openai`], [`super::anthropic`], [`super::gemini`]) holds its endpoints and
//! fixtures, its error envelope, its response headers and where its streams carry text.
//! Adding a dialect to the mock: one module with those items, one arm in each `match`
//! here, its fixtures in `tests/fixtures/<dialect>/`.

use serde_json::Value;

use super::{anthropic, gemini, openai};

/// A provider's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

/// One API endpoint the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Endpoint {
    pub dialect: Dialect,
    /// `chat_completions`, `messages`, `generate_content`, ... (as recorded).
    pub name: &'static str,
    /// The fixture of a whole (non-stream) answer.
    pub json: &'static str,
    /// The fixture of a stream; `None` for endpoints that never stream.
    pub sse: Option<&'static str>,
}

impl Endpoint {
    pub const fn new(
        dialect: Dialect,
        name: &'static str,
        json: &'static str,
        sse: Option<&'static str>,
    ) -> Endpoint {
        Endpoint {
            dialect,
            name,
            json,
            sse,
        }
    }
}

/// A request target the mock recognised.
pub(super) struct Classified {
    pub endpoint: Endpoint,
    /// The model named by the path (Gemini); `None`: the body's `model` names it.
    pub path_model: Option<String>,
    /// Whether the path asks to stream (Gemini); `None`: the body's `stream` says.
    pub path_stream: Option<bool>,
}

impl Classified {
    /// An endpoint whose model and stream flag are in the JSON body.
    pub fn by_body(endpoint: Endpoint) -> Classified {
        Classified {
            endpoint,
            path_model: None,
            path_stream: None,
        }
    }
}

/// Classifies a request by method and path (the query only tells Gemini's `alt=sse`);
/// `None` for anything the mock does not serve.
pub(super) fn classify(method: &str, target: &str) -> Option<Classified> {
    if method != "POST" {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    openai::classify(path)
        .or_else(|| anthropic::classify(path))
        .or_else(|| gemini::classify(path, query))
}

impl Dialect {
    /// The fixture folder's name, also `RecordedRequest::provider`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
        }
    }

    /// A generated error body in the provider's envelope, for codes without a fixture.
    pub fn error(self, status: u16, message: &str) -> Value {
        match self {
            Dialect::OpenAi => openai::error(status, message),
            Dialect::Anthropic => anthropic::error(status, message),
            Dialect::Gemini => gemini::error(status, message),
        }
    }

    pub fn content_type(self, sse: bool) -> &'static str {
        match self {
            Dialect::OpenAi => openai::content_type(sse),
            Dialect::Anthropic => anthropic::content_type(sse),
            Dialect::Gemini => gemini::content_type(sse),
        }
    }

    /// The provider-style response headers (rate limits, request ids, timings).
    pub fn headers(self, id: u64) -> Vec<(String, String)> {
        match self {
            Dialect::OpenAi => openai::headers(),
            Dialect::Anthropic => anthropic::headers(id),
            Dialect::Gemini => gemini::headers(),
        }
    }

    /// The text of a stream event's content delta, if the event is one.
    pub fn delta_text<'v>(self, endpoint: &str, event: &'v Value) -> Option<&'v Value> {
        match self {
            Dialect::OpenAi => openai::delta_text(endpoint, event),
            Dialect::Anthropic => anthropic::delta_text(event),
            Dialect::Gemini => gemini::delta_text(event),
        }
    }

    /// A JSON body re-written by the mock, formatted as the provider's fixtures are.
    pub fn json_bytes(self, v: &Value) -> Vec<u8> {
        match self {
            Dialect::Anthropic => serde_json::to_vec(v).unwrap(),
            Dialect::OpenAi | Dialect::Gemini => {
                let mut bytes = serde_json::to_vec_pretty(v).unwrap();
                bytes.push(b'\n');
                bytes
            }
        }
    }
}

/// A header pair, for the providers' header lists.
pub(super) fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}
