//! OpenAI, and every OpenAI-compatible API (DeepSeek, xAI, OpenRouter, Ollama, vLLM...):
//! the dialect of Chat Completions, Completions, Embeddings and the Responses API, and
//! the `openai` provider kind (`Authorization: Bearer`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::member::Member;
use super::quick::quick;
use super::read::{count, last_usage_of, NativeUsage};
use crate::endpoint::{model_id, Endpoint, Method, PathRejection};
use crate::error::GatewayError;
use crate::secret::Secret;
use crate::usage::Reported;

/// The provider kind's name in the config and the dialect's label.
pub const NAME: &str = "openai";

/// The model listing, which every dialect's clients call on this path (answered by the
/// gateway itself, in the client's shape: [`super::Dialect::of_request`]).
pub const MODELS_PATH: &str = "/v1/models";

/// The endpoint of one of the dialect's paths.
pub fn endpoint(path: &str) -> Result<(Endpoint, Method), PathRejection> {
    if let Some(id) = path
        .strip_prefix(MODELS_PATH)
        .and_then(|p| p.strip_prefix('/'))
    {
        return Ok((Endpoint::Model { id: model_id(id)? }, Method::Get));
    }
    Ok(match path {
        MODELS_PATH => (Endpoint::Models, Method::Get),
        "/v1/chat/completions" => (Endpoint::ChatCompletions, Method::Post),
        "/v1/completions" => (Endpoint::Completions, Method::Post),
        "/v1/embeddings" => (Endpoint::Embeddings, Method::Post),
        "/v1/responses" => (Endpoint::Responses, Method::Post),
        _ => return Err(PathRejection::NotFound),
    })
}

/// One model as `GET /v1/models/{id}` answers and the listing holds it.
pub fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "tollgate"})
}

/// The listing: every model at once (OpenAI's list does not page).
pub fn model_list(ids: &[String], _query: Option<&str>) -> Value {
    let data: Vec<Value> = ids.iter().map(|id| model_object(id)).collect();
    json!({"object": "list", "data": data})
}

/// The query parameters that go upstream: none, the proxied endpoints read none (an
/// Azure-style kind would add its `api-version` from its own config, not the client's).
pub const QUERY_PARAMS: &[(&str, &[&str])] = &[];

/// Request headers of this API that go upstream as the client sent them.
pub const REQUEST_HEADERS: &[&str] = &["openai-organization", "openai-project", "openai-beta"];

/// The header the key goes in.
pub const CREDENTIAL_HEADER: &str = "authorization";

/// The credential header's value for `key`: `Bearer <key>`.
pub fn credential_value(key: &Secret) -> Option<http::HeaderValue> {
    let mut v = Vec::with_capacity(7 + key.expose().len());
    v.extend_from_slice(b"Bearer ");
    v.extend_from_slice(key.expose().as_bytes());
    http::HeaderValue::from_bytes(&v).ok()
}

/// `{"error":{"message","type","param","code"}}`.
pub fn error_body(err: &GatewayError) -> Value {
    json!({
        "error": {
            "message": err.to_string(),
            "type": error_type(err.status()),
            "param": match err {
                GatewayError::Untranslatable { param, .. } => Value::String(param.clone()),
                _ => Value::Null,
            },
            "code": error_code(err),
        }
    })
}

/// An error in a stream that already started: a `data:` chunk holding the error body.
pub const SSE_ERROR_FRAME: (&[u8], &[u8]) = (b"data: ", b"\n\n");

fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

fn error_code(err: &GatewayError) -> &'static str {
    use GatewayError::*;
    match err {
        MissingKey | InvalidKey | RevokedKey(_) | ExpiredKey(_) => "invalid_api_key",
        UnknownModel(_) => "model_not_found",
        ModelNotAllowed(_) => "model_not_allowed",
        RateLimited { .. } => "rate_limit_exceeded",
        BudgetExceeded(_) => "budget_exceeded",
        Untranslatable { invalid: true, .. } => "invalid_request",
        Untranslatable { .. } => "unsupported_parameter",
        _ => err.metric_label(),
    }
}

/// `{"cached_tokens": n}` and `{"reasoning_tokens": n}` detail objects.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Details {
    pub cached_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

/// The `usage` object: Chat Completions, Completions and Embeddings (`prompt_tokens`...),
/// the Responses API (`input_tokens`...), DeepSeek's `prompt_cache_hit_tokens`; xAI,
/// OpenRouter and Ollama use the same names.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Usage {
    pub prompt_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub prompt_tokens_details: Option<Details>,
    pub input_tokens_details: Option<Details>,
    pub completion_tokens_details: Option<Details>,
    pub output_tokens_details: Option<Details>,
    pub prompt_cache_hit_tokens: Option<u64>,
}

quick!(Details {
    cached_tokens: b"cached_tokens" => count,
    reasoning_tokens: b"reasoning_tokens" => count,
});

quick!(Usage {
    prompt_tokens: b"prompt_tokens" => count,
    input_tokens: b"input_tokens" => count,
    completion_tokens: b"completion_tokens" => count,
    output_tokens: b"output_tokens" => count,
    prompt_tokens_details: b"prompt_tokens_details" => optional,
    input_tokens_details: b"input_tokens_details" => optional,
    completion_tokens_details: b"completion_tokens_details" => optional,
    output_tokens_details: b"output_tokens_details" => optional,
    prompt_cache_hit_tokens: b"prompt_cache_hit_tokens" => count,
});

impl Usage {
    /// Prompt tokens read from cache, wherever this API put them.
    pub fn cached(&self) -> Option<u64> {
        let cached = |d: &Option<Details>| d.as_ref().and_then(|d| d.cached_tokens);
        cached(&self.prompt_tokens_details)
            .or_else(|| cached(&self.input_tokens_details))
            .or(self.prompt_cache_hit_tokens)
    }

    fn reasoning(&self) -> Option<u64> {
        let reasoning = |d: &Option<Details>| d.as_ref().and_then(|d| d.reasoning_tokens);
        reasoning(&self.completion_tokens_details)
            .or_else(|| reasoning(&self.output_tokens_details))
    }
}

impl NativeUsage for Usage {
    fn from_value(v: &Value) -> Usage {
        let n = |key: &str| count(v, &[key]);
        let details = |key: &str| {
            v.get(key).filter(|d| d.is_object()).map(|_| Details {
                cached_tokens: count(v, &[key, "cached_tokens"]),
                reasoning_tokens: count(v, &[key, "reasoning_tokens"]),
            })
        };
        Usage {
            prompt_tokens: n("prompt_tokens"),
            input_tokens: n("input_tokens"),
            completion_tokens: n("completion_tokens"),
            output_tokens: n("output_tokens"),
            prompt_tokens_details: details("prompt_tokens_details"),
            input_tokens_details: details("input_tokens_details"),
            completion_tokens_details: details("completion_tokens_details"),
            output_tokens_details: details("output_tokens_details"),
            prompt_cache_hit_tokens: n("prompt_cache_hit_tokens"),
        }
    }

    /// The prompt count includes the cached tokens: they are taken out of `input`.
    fn reported(&self) -> Option<Reported> {
        let prompt = self.prompt_tokens.or(self.input_tokens)?;
        let output = self.completion_tokens.or(self.output_tokens);
        let cached = self.cached().unwrap_or(0);
        Some(Reported {
            input: Some(prompt.saturating_sub(cached)),
            output: Some(output.unwrap_or(0)),
            cache_read: Some(cached),
            cache_write: None,
            reasoning: self.reasoning(),
            complete: false,
        })
    }
}

/// Usage in (the tail of) a whole JSON response body.
pub fn usage_in_body(tail: &[u8]) -> Option<Reported> {
    last_usage_of::<Usage>(tail, b"usage")?.reported()
}

/// A stream event, for its usage: what [`usage_in_event`] reads, by a typed parse.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Event {
    usage: Member<Usage>,
    response: Member<ResponseUsage>,
}

/// The Responses API's `response.completed` holds its usage in `response`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
struct ResponseUsage {
    usage: Member<Usage>,
}

quick!(Event {
    usage: b"usage" => member,
    response: b"response" => member,
});

quick!(ResponseUsage {
    usage: b"usage" => member,
});

impl Event {
    /// What [`usage_in_event`] reports for the same event.
    pub fn reported(self) -> Option<Reported> {
        let u = self
            .usage
            .object()
            .or_else(|| self.response.object().and_then(|r| r.usage.object()));
        u?.reported().map(|r| Reported {
            complete: true,
            ..r
        })
    }
}

/// Usage in one stream event: the final chunk's `usage` (Chat Completions, with
/// `stream_options.include_usage`) or `response.usage` (the Responses API's
/// `response.completed`). Either is the final count.
pub fn usage_in_event(event: &Value) -> Option<Reported> {
    let u = event.get("usage").filter(|u| u.is_object());
    let u = u.or_else(|| {
        event
            .get("response")
            .and_then(|r| r.get("usage"))
            .filter(|u| u.is_object())
    });
    Usage::from_value(u?).reported().map(|r| Reported {
        complete: true,
        ..r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed parse and the lenient one read the same fields from every shape.
    #[test]
    fn typed_and_lenient_reads_agree() {
        let docs: &[&str] = &[
            r#"{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"accepted_prediction_tokens":0}}"#,
            r#"{"input_tokens":7,"output_tokens":3,"input_tokens_details":{"cached_tokens":1},"output_tokens_details":{"reasoning_tokens":1}}"#,
            r#"{"prompt_tokens":3,"prompt_cache_hit_tokens":2,"prompt_tokens_details":null}"#,
            r#"{ }"#,
        ];
        for doc in docs {
            let typed: Usage = serde_json::from_str(doc).unwrap();
            let value: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(typed, Usage::from_value(&value), "{doc}");
        }
    }

    #[test]
    fn cached_tokens_leave_the_input_bucket() {
        let body = br#"{"id":"x","usage":{"prompt_tokens":1117,"completion_tokens":246,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":192}}}"#;
        let r = usage_in_body(body).unwrap();
        assert_eq!(
            (r.input, r.output, r.cache_read, r.reasoning),
            (Some(93), Some(246), Some(1024), Some(192))
        );
        // DeepSeek names its cache hits differently.
        let r = usage_in_body(
            br#"{"usage":{"prompt_tokens":10,"prompt_cache_hit_tokens":4,"completion_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!((r.input, r.cache_read), (Some(6), Some(4)));
    }

    #[test]
    fn credential_is_a_bearer_token() {
        let v = credential_value(&Secret::new("sk-1")).unwrap();
        assert_eq!(v.to_str().unwrap(), "Bearer sk-1");
        assert!(credential_value(&Secret::new("bad\nkey")).is_none());
    }
}
