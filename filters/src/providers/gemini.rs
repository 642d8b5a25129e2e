//! Gemini: the generateContent dialect (the model lives in the path, the key may come as
//! `?key=`) and the `gemini` provider kind (`x-goog-api-key`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::member::{AnyHasFinishReason, Member};
use super::quick::quick;
use super::read::{count, last_usage_of, NativeUsage};
use crate::auth::query_param;
use crate::endpoint::{percent_decode, Endpoint, Method, PathRejection};
use crate::error::GatewayError;
use crate::model_name;
use crate::secret::Secret;
use crate::usage::Reported;

/// The provider kind's name in the config and the dialect's label.
pub const NAME: &str = "gemini";

/// Every path of the dialect starts so; an unknown path under it is refused in the
/// dialect's envelope. Its methods are served under `/v1/` too ([`is_method_path`]).
pub const PATH_PREFIX: &str = "/v1beta";

/// The API versions clients call, as path prefixes: google-genai defaults to `v1`. The
/// upstream path keeps the client's.
const VERSIONS: [&str; 2] = ["/v1beta/", "/v1/"];
const MODELS: &str = "models";
const GENERATE: &str = "generateContent";
const STREAM_GENERATE: &str = "streamGenerateContent";
const COUNT_TOKENS: &str = "countTokens";

/// What the listing says each model supports: the methods the gateway forwards.
const METHODS: [&str; 3] = [GENERATE, STREAM_GENERATE, COUNT_TOKENS];

/// Whether `path` calls a Gemini method under `/v1/models/` (its other paths are
/// under [`PATH_PREFIX`]): the model listing `/v1/models/{id}` is everyone's.
pub fn is_method_path(path: &str) -> bool {
    path.starts_with("/v1/models/")
        && path
            .rsplit_once(':')
            .is_some_and(|(_, method)| METHODS.contains(&method))
}

/// The endpoint of one of the dialect's paths, under either version:
/// `models/{model}:generateContent`, `:streamGenerateContent`, `:countTokens` (POST),
/// and the listing `models`, `models/{model}` (GET). A model is percent-decoded and held
/// to [`model_name::check_path_model`]: a name that could reach past its segment is
/// refused, never forwarded.
pub fn endpoint(path: &str) -> Result<(Endpoint, Method), PathRejection> {
    let rest = VERSIONS
        .iter()
        .find_map(|v| path.strip_prefix(v))
        .ok_or(PathRejection::NotFound)?;
    if rest == MODELS {
        return Ok((Endpoint::Models, Method::Get));
    }
    let rest = rest
        .strip_prefix(MODELS)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(PathRejection::NotFound)?;
    if rest.contains('/') {
        return Err(PathRejection::NotFound);
    }
    // The method follows the last colon; a colon in the name itself is refused below.
    let Some((segment, action)) = rest.rsplit_once(':') else {
        let id = path_model(rest)?;
        return Ok((Endpoint::Model { id }, Method::Get));
    };
    if !METHODS.contains(&action) {
        return Err(PathRejection::NotFound);
    }
    let model = path_model(segment)?;
    let endpoint = match action {
        COUNT_TOKENS => Endpoint::GeminiCountTokens { model },
        _ => Endpoint::Gemini {
            model,
            stream: action == STREAM_GENERATE,
        },
    };
    Ok((endpoint, Method::Post))
}

/// A model segment of a path, decoded and checked.
fn path_model(segment: &str) -> Result<String, PathRejection> {
    let model = percent_decode(segment).ok_or(PathRejection::Traversal)?;
    model_name::check_path_model(&model).map_err(|e| PathRejection::InvalidModel(e.to_string()))?;
    Ok(model.into_owned())
}

/// Appends the upstream path of `endpoint`: a Gemini method is built here from its parts
/// (the client's API version, the served model after aliases as one encoded segment, the
/// method), never copied from the client; others keep the client's path.
pub fn push_upstream_path(
    out: &mut String,
    endpoint: &Endpoint,
    served_model: &str,
    client_path: &str,
) {
    let method = match endpoint {
        Endpoint::Gemini { stream: false, .. } => GENERATE,
        Endpoint::Gemini { stream: true, .. } => STREAM_GENERATE,
        Endpoint::GeminiCountTokens { .. } => COUNT_TOKENS,
        _ => return out.push_str(client_path),
    };
    let version = VERSIONS
        .iter()
        .find(|v| client_path.starts_with(**v))
        .unwrap_or(&VERSIONS[0]);
    out.push_str(version);
    out.push_str(MODELS);
    out.push('/');
    model_name::push_path_segment(out, served_model);
    out.push(':');
    out.push_str(method);
}

/// One model as `GET /v1beta/models/{model}` answers and the listing holds it.
pub fn model_object(id: &str) -> Value {
    json!({"name": format!("models/{id}"), "displayName": id, "supportedGenerationMethods": METHODS})
}

/// Gemini's page size when the client asks for none, and the most it may ask for.
const PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The listing, `pageSize` models at a time: only names a Gemini path can carry, the
/// next page after `nextPageToken` (the last name of this one, so a page never repeats
/// or skips a name when the list changes between calls).
pub fn model_list(ids: &[String], query: Option<&str>) -> Value {
    let param = |name: &str| query.and_then(|q| query_param(q, name));
    let size = param("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE));
    let ids: Vec<&String> = ids
        .iter()
        .filter(|id| model_name::check_path_model(id).is_ok())
        .collect();
    let start = param("pageToken")
        .and_then(percent_decode)
        .map_or(0, |after| {
            ids.partition_point(|id| id.as_str() <= after.as_ref())
        });
    let page = &ids[start..ids.len().min(start + size)];
    let models: Vec<Value> = page.iter().map(|id| model_object(id)).collect();
    let mut out = json!({ "models": models });
    if start + page.len() < ids.len() {
        if let Some(last) = page.last() {
            out["nextPageToken"] = Value::from(last.as_str());
        }
    }
    out
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

quick!(UsageMetadata {
    prompt_token_count: b"promptTokenCount" => count,
    cached_content_token_count: b"cachedContentTokenCount" => count,
    thoughts_token_count: b"thoughtsTokenCount" => count,
    candidates_token_count: b"candidatesTokenCount" => count,
});

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

/// A stream event, for its usage: what [`usage_in_event`] reads, by a typed parse.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct Event {
    candidates: AnyHasFinishReason,
    usage_metadata: Member<UsageMetadata>,
}

quick!(Event {
    candidates: b"candidates" => any_has_finish_reason,
    usage_metadata: b"usageMetadata" => member,
});

impl Event {
    /// What [`usage_in_event`] reports for the same event.
    pub fn reported(self) -> Option<Reported> {
        let Member::Present(u) = self.usage_metadata else {
            return None;
        };
        u.unwrap_or_default().reported().map(|r| Reported {
            complete: self.candidates.0,
            ..r
        })
    }
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
        let (e, _) = endpoint("/v1/models/g:countTokens").unwrap();
        assert_eq!(e, Endpoint::GeminiCountTokens { model: "g".into() });
        let mut out = String::new();
        push_upstream_path(&mut out, &e, "served", "/v1/models/g:countTokens");
        assert_eq!(out, "/v1/models/served:countTokens");
        assert_eq!(
            endpoint("/v1beta/models"),
            Ok((Endpoint::Models, Method::Get))
        );
        assert_eq!(
            endpoint("/v1beta/models/g"),
            Ok((Endpoint::Model { id: "g".into() }, Method::Get))
        );
        assert!(is_method_path("/v1/models/x:streamGenerateContent"));
        assert!(!is_method_path("/v1/models/ft:gpt-4o:org:id"));
        assert!(!is_method_path("/v1beta/models/x:generateContent"));
    }

    #[test]
    fn the_listing_pages_by_name_and_holds_only_path_safe_names() {
        let ids: Vec<String> = ["a", "b", "c", "d/e", "f"].map(String::from).to_vec();
        let names = |v: &Value| -> Vec<String> {
            v["models"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let all = model_list(&ids, None);
        assert_eq!(
            names(&all),
            ["models/a", "models/b", "models/c", "models/f"]
        );
        assert!(all.get("nextPageToken").is_none());
        let p1 = model_list(&ids, Some("pageSize=3"));
        assert_eq!(names(&p1), ["models/a", "models/b", "models/c"]);
        assert_eq!(p1["nextPageToken"], "c");
        let p2 = model_list(&ids, Some("pageSize=3&pageToken=c"));
        assert_eq!(names(&p2), ["models/f"]);
        assert!(p2.get("nextPageToken").is_none());
        assert_eq!(names(&model_list(&ids, Some("pageToken=zz"))).len(), 0);
        assert_eq!(
            model_object("g")["supportedGenerationMethods"][2],
            "countTokens"
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
