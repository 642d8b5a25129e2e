//! Gemini: the generateContent dialect (the model lives in the path, the key may come as
//! `?key=`) and the `gemini` provider kind (`x-goog-api-key`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::read::{count, last_usage_of, NativeUsage};
use crate::endpoint::{percent_decode, Endpoint, Method, PathRejection};
use crate::error::GatewayError;
use crate::model_name;
use crate::secret::Secret;
use crate::usage::Reported;

/// The provider kind's name in the config and the dialect's label.
pub const NAME: &str = "gemini";

/// Every path of the dialect starts so; an unknown path under it is refused in the
/// dialect's envelope.
pub const PATH_PREFIX: &str = "/v1beta";

/// Where the model's path starts: `{MODELS}{model}:{action}`.
const MODELS: &str = "/v1beta/models/";
const GENERATE: &str = "generateContent";
const STREAM_GENERATE: &str = "streamGenerateContent";

/// The endpoint of one of the dialect's paths: `/v1beta/models/{model}:generateContent`
/// or `:streamGenerateContent`, the model percent-decoded and held to
/// [`model_name::check_path_model`] (a name that could reach past its segment is
/// refused, never forwarded).
pub fn endpoint(path: &str) -> Result<(Endpoint, Method), PathRejection> {
    let rest = path.strip_prefix(MODELS).ok_or(PathRejection::NotFound)?;
    // The method follows the last colon; a colon in the name itself is refused below.
    let (segment, action) = rest.rsplit_once(':').ok_or(PathRejection::NotFound)?;
    let stream = match action {
        GENERATE => false,
        STREAM_GENERATE => true,
        _ => return Err(PathRejection::NotFound),
    };
    if segment.contains('/') {
        return Err(PathRejection::NotFound);
    }
    let model = percent_decode(segment).ok_or(PathRejection::Traversal)?;
    model_name::check_path_model(&model).map_err(|e| PathRejection::InvalidModel(e.to_string()))?;
    let model = model.into_owned();
    Ok((Endpoint::Gemini { model, stream }, Method::Post))
}

/// Appends the upstream path of `endpoint`: a Gemini endpoint names the served model
/// (after aliases), as one encoded segment of a path built here from its parts; others
/// keep the client's path.
pub fn push_upstream_path(
    out: &mut String,
    endpoint: &Endpoint,
    served_model: &str,
    client_path: &str,
) {
    match endpoint {
        Endpoint::Gemini { stream, .. } => {
            out.push_str(MODELS);
            model_name::push_path_segment(out, served_model);
            out.push(':');
            out.push_str(if *stream { STREAM_GENERATE } else { GENERATE });
        }
        _ => out.push_str(client_path),
    }
}

/// Request headers of this API that go upstream as the client sent them.
pub const REQUEST_HEADERS: &[&str] = &["x-goog-api-client"];

/// The header the key goes in, as the key itself.
pub const CREDENTIAL_HEADER: &str = "x-goog-api-key";

/// The query parameter Gemini clients may send their key in instead. It never goes
/// upstream.
pub const QUERY_KEY: &str = "key";

/// The query parameters that go upstream, with their values: the response format
/// (`alt=sse` streams server-sent events).
pub const QUERY_PARAMS: &[(&str, &[&str])] = &[("alt", &["sse", "json", "proto"])];

/// The credential header's value for `key`.
pub fn credential_value(key: &Secret) -> Option<http::HeaderValue> {
    http::HeaderValue::from_str(key.expose()).ok()
}

/// `{"error":{"code","message","status"}}`.
pub fn error_body(err: &GatewayError) -> Value {
    let status = err.status();
    json!({
        "error": { "code": status, "message": err.to_string(), "status": status_name(status) }
    })
}

/// An error in a stream that already started: a `data:` event with the error object,
/// framed with CRLF as Gemini frames its events.
pub const SSE_ERROR_FRAME: (&[u8], &[u8]) = (b"data: ", b"\r\n\r\n");

fn status_name(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 | 405 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        502 | 503 => "UNAVAILABLE",
        s if s >= 500 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

/// The `usageMetadata` object. The prompt count includes cached content; the output
/// is the candidates plus the thoughts.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct UsageMetadata {
    pub prompt_token_count: Option<u64>,
    pub cached_content_token_count: Option<u64>,
    pub thoughts_token_count: Option<u64>,
    pub candidates_token_count: Option<u64>,
}

impl NativeUsage for UsageMetadata {
    fn from_value(v: &Value) -> UsageMetadata {
        let n = |key: &str| count(v, &[key]);
        UsageMetadata {
            prompt_token_count: n("promptTokenCount"),
            cached_content_token_count: n("cachedContentTokenCount"),
            thoughts_token_count: n("thoughtsTokenCount"),
            candidates_token_count: n("candidatesTokenCount"),
        }
    }

    fn reported(&self) -> Option<Reported> {
        let prompt = self.prompt_token_count?;
        let cached = self.cached_content_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        let candidates = self.candidates_token_count.unwrap_or(0);
        Some(Reported {
            input: Some(prompt.saturating_sub(cached)),
            output: Some(candidates + thoughts),
            cache_read: Some(cached),
            cache_write: None,
            reasoning: Some(thoughts),
            complete: false,
        })
    }
}

/// Usage in (the tail of) a whole JSON response body.
pub fn usage_in_body(tail: &[u8]) -> Option<Reported> {
    last_usage_of::<UsageMetadata>(tail, b"usageMetadata")?.reported()
}

/// Usage in one stream event: every chunk carries the running `usageMetadata`; the one
/// with a `finishReason` has the final count.
pub fn usage_in_event(event: &Value) -> Option<Reported> {
    let finished = event
        .get("candidates")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c.get("finishReason").is_some()));
    UsageMetadata::from_value(event.get("usageMetadata")?)
        .reported()
        .map(|r| Reported {
            complete: finished,
            ..r
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed parse and the lenient one read the same fields.
    #[test]
    fn typed_and_lenient_reads_agree() {
        let docs: &[&str] = &[
            r#"{"promptTokenCount":8,"candidatesTokenCount":4,"thoughtsTokenCount":2,"cachedContentTokenCount":3,"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}]}"#,
            r#"{"promptTokenCount":8,"totalTokenCount":8}"#,
            r#"{ }"#,
        ];
        for doc in docs {
            let typed: UsageMetadata = serde_json::from_str(doc).unwrap();
            let value: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(typed, UsageMetadata::from_value(&value), "{doc}");
        }
    }

    #[test]
    fn the_model_path_both_ways() {
        let (e, m) = endpoint("/v1beta/models/gemini-2.0-flash:streamGenerateContent").unwrap();
        assert_eq!(m, Method::Post);
        let mut out = String::from("/base");
        push_upstream_path(&mut out, &e, "gemini-2.5-pro", "/ignored");
        assert_eq!(
            out,
            "/base/v1beta/models/gemini-2.5-pro:streamGenerateContent"
        );
        // An alias target from the config stays inside its segment.
        let mut out = String::new();
        push_upstream_path(&mut out, &e, "models/x?key=1#", "/ignored");
        assert_eq!(
            out,
            "/v1beta/models/models%2Fx%3Fkey%3D1%23:streamGenerateContent"
        );
        assert_eq!(
            endpoint("/v1beta/models/a/b:generateContent").err(),
            Some(PathRejection::NotFound),
            "a slash in the model"
        );
        assert_eq!(
            endpoint("/v1beta/models/x:countTokens%23:generateContent")
                .map_err(|e| matches!(e, PathRejection::InvalidModel(_))),
            Err(true)
        );
        assert!(matches!(
            endpoint("/v1beta/models/:generateContent"),
            Err(PathRejection::InvalidModel(_))
        ));
        assert_eq!(
            endpoint("/v1beta/models/x:delete").err(),
            Some(PathRejection::NotFound)
        );
    }

    #[test]
    fn cached_content_and_thoughts() {
        let body = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":110,"candidatesTokenCount":12,"cachedContentTokenCount":100,"thoughtsTokenCount":30}}"#;
        let r = usage_in_body(body).unwrap();
        assert_eq!(
            (r.input, r.output, r.cache_read, r.reasoning),
            (Some(10), Some(42), Some(100), Some(30))
        );
    }
}
