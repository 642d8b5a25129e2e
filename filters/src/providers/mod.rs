//! One module per provider: what Tollgate knows about a provider lives in
//! `providers/<name>.rs` (its paths, credential form, error envelope and SSE error event,
//! where its usage sits in a response and a stream, how its paths are built), reached
//! through the two closed enums below, whose methods dispatch with one `match` each (as
//! TensorZero's `ProviderConfig` and mini-redis's `Command` do). Nothing outside this
//! folder matches on a provider to learn one of those things.
//!
//! **[`Dialect`]** is a wire format: the paths a client calls, the errors it
//! understands, where usage sits in what it reads. **[`ProviderKind`]** is who an
//! upstream is: its `kind:` in the config, the header its key goes in, and the dialect
//! it speaks. Today each kind speaks its own dialect, and they could be one enum; they
//! are two because they grow apart: an OpenAI-compatible service with another credential
//! (Azure's `api-key` header) or Gemini behind Vertex is a new kind speaking an existing
//! dialect, and it must not become a dialect clients could be answered in. Client-facing
//! behaviour (paths, error envelopes) follows the client's `Dialect`; the meter reads the
//! upstream kind's dialect ([`ProviderKind::dialect`]); the finer shape within a dialect
//! (Chat Completions or Responses) is the [`Endpoint`]'s.
//!
//! # Adding a provider
//!
//! An upstream-only provider that speaks an existing dialect:
//! 1. `providers/<name>.rs`: `NAME` (its `kind:` in the config), `CREDENTIAL_HEADER` and
//!    `credential_value`, with a unit test of the credential.
//! 2. Here: a [`ProviderKind`] variant, in [`ProviderKind::ALL`] and in each `match` of
//!    `impl ProviderKind` (the compiler lists them), its [`ProviderKind::dialect`] the
//!    dialect it speaks.
//! 3. Fixtures: its recorded responses under `tests/fixtures/<name>/`, served by the mock
//!    of that dialect in `tests/common/mock_upstream.rs`.
//!
//! A provider with a dialect of its own, in addition:
//! 4. In its module: `endpoint` (its client paths) and `PATH_PREFIX` if they have one of
//!    their own; `REQUEST_HEADERS` (its API's own request headers); `error_body` and
//!    `SSE_ERROR_FRAME`; its native usage type implementing [`read::NativeUsage`], with
//!    `usage_in_body` and `usage_in_event`; `push_upstream_path` if its paths carry the
//!    model; unit tests against its recorded responses.
//! 5. Here: a [`Dialect`] variant and its arms, its prefix in [`Dialect::of_path`], its
//!    headers in [`forwards_request_header`]. In `endpoint.rs`: its endpoints' variants
//!    and their `dialect()`. In the mock: its answers.
//!
//! # Translation (issue 12)
//!
//! Each module owns its dialect's wire types: today its usage object, tomorrow the
//! request and response shapes a translator reads and writes. Translation goes in a
//! sibling `translate/` module: a small typed model, and per dialect a reader and a writer
//! built on that dialect's wire types, chosen by (client [`Dialect`], upstream
//! [`ProviderKind::dialect`]); equal dialects mean no translation at all. The proxy calls
//! it as a transport step of its own, these modules never depend on it, and the meter
//! keeps reading the upstream's own bytes before it.

pub mod anthropic;
pub mod gemini;
pub(crate) mod member;
pub mod openai;
pub mod quick;
pub mod read;
pub mod wire;

use bytes::Bytes;
use pingora_http::RequestHeader;

use crate::auth::query_param;
use crate::endpoint::{Endpoint, Method, PathRejection};
use crate::error::GatewayError;
use crate::secret::Secret;
use crate::usage::Reported;

/// A wire format, as a client speaks it (errors are answered in it) and as an upstream
/// answers in it (usage is read in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

/// What an event of type `E` reports, read by hand or else by the typed parse; `None`
/// when both refuse it.
fn event_usage<'a, E>(
    data: &'a [u8],
    reported: fn(E) -> Option<Reported>,
) -> Option<Option<Reported>>
where
    E: quick::Quick<'a> + serde::Deserialize<'a>,
{
    quick::document_or_typed::<E>(data).map(reported)
}

impl Dialect {
    /// A stable, low-cardinality label (logs, metrics, the usage record).
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => openai::NAME,
            Dialect::Anthropic => anthropic::NAME,
            Dialect::Gemini => gemini::NAME,
        }
    }

    /// The endpoint of `path` if it is one of this dialect's, with the method it takes.
    pub fn endpoint(self, path: &str) -> Result<(Endpoint, Method), PathRejection> {
        match self {
            Dialect::OpenAi => openai::endpoint(path),
            Dialect::Anthropic => anthropic::endpoint(path),
            Dialect::Gemini => gemini::endpoint(path),
        }
    }

    /// The dialect whose paths `path` is among, if it is one of ours, by its prefix
    /// (OpenAI's when no other dialect claims it): the only dialect that can serve it,
    /// and the one to refuse it in if none does.
    pub fn of_path(path: &str) -> Dialect {
        let claims = |prefix: &str| path.starts_with(prefix);
        if claims(gemini::PATH_PREFIX) || gemini::is_method_path(path) {
            Dialect::Gemini
        } else if claims(anthropic::PATH_PREFIX) {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }

    /// The dialect a client speaks, from its request: its path's ([`Dialect::of_path`]),
    /// except on the model listing that every dialect's clients call on OpenAI's path
    /// (`/v1/models[/{id}]`), where the headers it sends tell: Gemini's credential
    /// (`x-goog-api-key` or `?key=`), else Anthropic's credential or version header
    /// (`x-api-key`, `anthropic-version`: Claude Code sends a bearer token with it), else
    /// OpenAI's.
    pub fn of_request(req: &RequestHeader) -> Dialect {
        let path = req.uri.path();
        let listing = path
            .strip_prefix(openai::MODELS_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !listing || gemini::is_method_path(path) {
            return Dialect::of_path(path);
        }
        let has = |name: &str| req.headers.contains_key(name);
        let query_key = req
            .uri
            .query()
            .is_some_and(|q| query_param(q, gemini::QUERY_KEY).is_some());
        if has(gemini::CREDENTIAL_HEADER) || query_key {
            Dialect::Gemini
        } else if has(anthropic::CREDENTIAL_HEADER) || has(anthropic::VERSION_HEADER) {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }

    /// The model listing's document in this dialect's shape, for `ids` (sorted); `query`
    /// is the client's, for the dialect's paging parameters.
    pub fn model_list(self, ids: &[String], query: Option<&str>) -> serde_json::Value {
        match self {
            Dialect::OpenAi => openai::model_list(ids, query),
            Dialect::Anthropic => anthropic::model_list(ids, query),
            Dialect::Gemini => gemini::model_list(ids, query),
        }
    }

    /// One model's document in this dialect's shape.
    pub fn model_object(self, id: &str) -> serde_json::Value {
        match self {
            Dialect::OpenAi => openai::model_object(id),
            Dialect::Anthropic => anthropic::model_object(id),
            Dialect::Gemini => gemini::model_object(id),
        }
    }

    /// Whether this dialect's clients can name `id` in a listing path, or `Err` with
    /// the refusal (Gemini's paths take a strict set, [`crate::model_name`]).
    pub fn check_listed_model(self, id: &str) -> Result<(), GatewayError> {
        match self {
            Dialect::Gemini => crate::model_name::check_path_model(id),
            Dialect::OpenAi | Dialect::Anthropic => Ok(()),
        }
    }

    /// The query parameter a client of this dialect may send its key in.
    pub fn query_credential(self) -> Option<&'static str> {
        match self {
            Dialect::Gemini => Some(gemini::QUERY_KEY),
            Dialect::OpenAi | Dialect::Anthropic => None,
        }
    }

    /// Whether a query parameter of this dialect's clients goes upstream: only the
    /// parameters its API reads that are no credential, each with the values it takes
    /// (`name` percent-decoded, `value` as sent). Everything else stays here.
    pub fn forwards_query_param(self, name: &str, value: &str) -> bool {
        let allowed = match self {
            Dialect::OpenAi => openai::QUERY_PARAMS,
            Dialect::Anthropic => anthropic::QUERY_PARAMS,
            Dialect::Gemini => gemini::QUERY_PARAMS,
        };
        allowed
            .iter()
            .any(|(n, values)| *n == name && values.contains(&value))
    }

    /// Whether the upstream path of this dialect's endpoints can differ from the
    /// client's (beyond the upstream's base path), so the URI must be rebuilt.
    pub fn rewrites_path(self) -> bool {
        matches!(self, Dialect::Gemini)
    }

    /// Appends the upstream path of `endpoint` (what follows the upstream's base path):
    /// the client's own path, or one naming the served model where the dialect puts the
    /// model in the path.
    pub fn push_upstream_path(
        self,
        out: &mut String,
        endpoint: &Endpoint,
        served_model: &str,
        client_path: &str,
    ) {
        match self {
            Dialect::Gemini => gemini::push_upstream_path(out, endpoint, served_model, client_path),
            Dialect::OpenAi | Dialect::Anthropic => out.push_str(client_path),
        }
    }

    /// `err` in this dialect's error envelope, as JSON bytes.
    pub fn error_body(self, err: &GatewayError) -> Bytes {
        let value = match self {
            Dialect::OpenAi => openai::error_body(err),
            Dialect::Anthropic => anthropic::error_body(err),
            Dialect::Gemini => gemini::error_body(err),
        };
        Bytes::from(value.to_string())
    }

    /// `err` as the final server-sent event of a stream that already started, framed as
    /// this dialect's clients expect an error event.
    pub fn sse_error_event(self, err: &GatewayError) -> Bytes {
        let body = self.error_body(err);
        let (head, tail) = match self {
            Dialect::OpenAi => openai::SSE_ERROR_FRAME,
            Dialect::Anthropic => anthropic::SSE_ERROR_FRAME,
            Dialect::Gemini => gemini::SSE_ERROR_FRAME,
        };
        let mut out = Vec::with_capacity(head.len() + body.len() + tail.len());
        out.extend_from_slice(head);
        out.extend_from_slice(&body);
        out.extend_from_slice(tail);
        Bytes::from(out)
    }

    /// Usage in (the tail of) a whole JSON response body in this dialect.
    pub fn usage_in_body(self, tail: &[u8]) -> Option<Reported> {
        match self {
            Dialect::OpenAi => openai::usage_in_body(tail),
            Dialect::Anthropic => anthropic::usage_in_body(tail),
            Dialect::Gemini => gemini::usage_in_body(tail),
        }
    }

    /// Usage carried by one SSE `data:` payload in this dialect, if any. Payloads
    /// without a usage object are never parsed.
    pub fn usage_in_event(self, data: &[u8]) -> Option<Reported> {
        if !read::has_usage_object(data) {
            return None;
        }
        // An event in the usual shape is read by hand; any other by the typed read,
        // which skips every member but the usage; an event that refuses too (a count of
        // an unexpected type, a member twice) is read as a tree, which takes what it
        // can. Only an object takes them: serde would read an array into its fields.
        if data.trim_ascii_start().starts_with(b"{") {
            let read = match self {
                Dialect::OpenAi => event_usage(data, openai::Event::reported),
                Dialect::Anthropic => event_usage(data, anthropic::Event::reported),
                Dialect::Gemini => event_usage(data, gemini::Event::reported),
            };
            if let Some(reported) = read {
                return reported;
            }
        }
        let event: serde_json::Value = serde_json::from_slice(data).ok()?;
        match self {
            Dialect::OpenAi => openai::usage_in_event(&event),
            Dialect::Anthropic => anthropic::usage_in_event(&event),
            Dialect::Gemini => gemini::usage_in_event(&event),
        }
    }
}

/// The kind of an upstream: which provider's API it is (its `kind:` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI and every OpenAI-compatible API.
    OpenAi,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    /// Every kind, in the order the config's error message lists them.
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];

    /// Its name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => openai::NAME,
            ProviderKind::Anthropic => anthropic::NAME,
            ProviderKind::Gemini => gemini::NAME,
        }
    }

    /// The kind a config names.
    pub fn parse(name: &str) -> Option<ProviderKind> {
        ProviderKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The kinds' names for a message: `a, b or c`.
    pub fn names() -> String {
        let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }

    /// The dialect the upstream answers in.
    pub fn dialect(self) -> Dialect {
        match self {
            ProviderKind::OpenAi => Dialect::OpenAi,
            ProviderKind::Anthropic => Dialect::Anthropic,
            ProviderKind::Gemini => Dialect::Gemini,
        }
    }

    /// The header the upstream takes its key in.
    pub fn credential_header(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => openai::CREDENTIAL_HEADER,
            ProviderKind::Anthropic => anthropic::CREDENTIAL_HEADER,
            ProviderKind::Gemini => gemini::CREDENTIAL_HEADER,
        }
    }

    /// The value of [`ProviderKind::credential_header`] for `key`, marked sensitive (kept
    /// out of HPACK tables and debug output); `None` when the key is not a valid header
    /// value.
    pub fn credential_value(self, key: &Secret) -> Option<http::HeaderValue> {
        let mut value = match self {
            ProviderKind::OpenAi => openai::credential_value(key),
            ProviderKind::Anthropic => anthropic::credential_value(key),
            ProviderKind::Gemini => gemini::credential_value(key),
        }?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// Whether a client's request header is one of a provider API's own (version, beta
/// flags, organisation) that goes upstream unchanged, whichever the upstream.
pub fn forwards_request_header(name: &str) -> bool {
    openai::REQUEST_HEADERS.contains(&name)
        || anthropic::REQUEST_HEADERS.contains(&name)
        || gemini::REQUEST_HEADERS.contains(&name)
}

impl From<ProviderKind> for Dialect {
    fn from(kind: ProviderKind) -> Dialect {
        kind.dialect()
    }
}

#[cfg(test)]
mod dialect_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name_and_their_credentials() {
        assert_eq!(
            ProviderKind::parse("anthropic"),
            Some(ProviderKind::Anthropic)
        );
        assert_eq!(ProviderKind::parse("llama"), None);
        assert_eq!(ProviderKind::names(), "openai, anthropic or gemini");
        let key = Secret::new("k-1");
        let headers: Vec<(&str, String)> = ProviderKind::ALL
            .iter()
            .map(|k| {
                let v = k.credential_value(&key).unwrap();
                assert!(v.is_sensitive());
                (k.credential_header(), v.to_str().unwrap().to_owned())
            })
            .collect();
        assert_eq!(
            headers,
            [
                ("authorization", "Bearer k-1".to_owned()),
                ("x-api-key", "k-1".to_owned()),
                ("x-goog-api-key", "k-1".to_owned())
            ]
        );
        for k in ProviderKind::ALL {
            assert_eq!(k.as_str(), k.dialect().as_str());
        }
    }

    #[test]
    fn unknown_paths_are_refused_in_the_dialect_they_look_like() {
        assert_eq!(Dialect::of_path("/v1beta/x"), Dialect::Gemini);
        assert_eq!(Dialect::of_path("/v1/messages/x"), Dialect::Anthropic);
        assert_eq!(Dialect::of_path("/v1/nope"), Dialect::OpenAi);
    }

    #[test]
    fn sse_error_events_are_framed_per_dialect() {
        let e = GatewayError::UpstreamStreamBroken("u".into());
        let a = Dialect::Anthropic.sse_error_event(&e);
        assert!(a.starts_with(b"event: error\ndata: {") && a.ends_with(b"}\n\n"));
        let o = Dialect::OpenAi.sse_error_event(&e);
        assert!(o.starts_with(b"data: {\"error\":") && o.ends_with(b"}\n\n"));
        let g = Dialect::Gemini.sse_error_event(&e);
        assert!(g.starts_with(b"data: {\"error\":") && g.ends_with(b"}\r\n\r\n"));
    }

    #[test]
    fn stream_events_without_a_usage_object_are_not_parsed() {
        // Not even valid JSON: the cheap check refuses it before any parse.
        assert_eq!(Dialect::OpenAi.usage_in_event(br#"{"usage":null,"#), None);
        let r = Dialect::Gemini.usage_in_event(
            br#"{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3}}"#,
        );
        assert!(r.is_some_and(|r| r.complete && r.input == Some(3)));
    }
}
