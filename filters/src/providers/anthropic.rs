//! Anthropic: the Messages dialect (`/v1/messages`, `count_tokens`) and the `anthropic`
//! provider kind (`x-api-key`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::member::Member;
use super::quick::quick;
use super::read::{count, last_usage_of, NativeUsage};
use crate::auth::query_param;
use crate::endpoint::{percent_decode, Endpoint, Method, PathRejection};
use crate::error::GatewayError;
use crate::secret::Secret;
use crate::usage::Reported;

/// The provider kind's name in the config and the dialect's label.
pub const NAME: &str = "anthropic";

/// Every path of the dialect starts so; an unknown path under it is refused in the
/// dialect's envelope.
pub const PATH_PREFIX: &str = "/v1/messages";

/// The endpoint of one of the dialect's paths.
pub fn endpoint(path: &str) -> Result<(Endpoint, Method), PathRejection> {
    Ok(match path {
        "/v1/messages" => (Endpoint::Messages, Method::Post),
        "/v1/messages/count_tokens" => (Endpoint::CountTokens, Method::Post),
        _ => return Err(PathRejection::NotFound),
    })
}

/// The `created_at` of every listed model: the gateway knows no release dates (OpenAI's
/// shape says `created: 0` likewise).
const CREATED_AT: &str = "1970-01-01T00:00:00Z";

/// Anthropic's page size when the client asks for none, and the most it may ask for.
const PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 1000;

/// One model as `GET /v1/models/{id}` answers and the listing holds it.
pub fn model_object(id: &str) -> Value {
    json!({"type": "model", "id": id, "display_name": id, "created_at": CREATED_AT})
}

/// The listing, `limit` models at a time: after `after_id` or, with `before_id`, the page
/// just before it (ids compared in the list's order, so an id no longer listed still
/// places the page); `has_more` says whether more lie further in that direction.
pub fn model_list(ids: &[String], query: Option<&str>) -> Value {
    let param = |name: &str| {
        query
            .and_then(|q| query_param(q, name))
            .and_then(percent_decode)
    };
    let limit = param("limit")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .map_or(PAGE_SIZE, |n| n.min(MAX_PAGE_SIZE));
    let (page, has_more) = if let Some(before) = param("before_id") {
        let end = ids.partition_point(|id| id.as_str() < before.as_ref());
        let start = end.saturating_sub(limit);
        (&ids[start..end], start > 0)
    } else {
        let start = param("after_id").map_or(0, |after| {
            ids.partition_point(|id| id.as_str() <= after.as_ref())
        });
        let end = ids.len().min(start + limit);
        (&ids[start..end], end < ids.len())
    };
    let data: Vec<Value> = page.iter().map(|id| model_object(id)).collect();
    json!({
        "data": data,
        "has_more": has_more,
        "first_id": page.first(),
        "last_id": page.last(),
    })
}

/// The query parameters that go upstream, with their values: Claude Code sends
/// `?beta=true` with beta features.
pub const QUERY_PARAMS: &[(&str, &[&str])] = &[("beta", &["true", "false"])];

/// The API version header every Anthropic client sends.
pub const VERSION_HEADER: &str = "anthropic-version";

/// Request headers of this API that go upstream as the client sent them.
pub const REQUEST_HEADERS: &[&str] = &[VERSION_HEADER, "anthropic-beta"];

/// The header the key goes in, as the key itself.
pub const CREDENTIAL_HEADER: &str = "x-api-key";

/// The credential header's value for `key`.
pub fn credential_value(key: &Secret) -> Option<http::HeaderValue> {
    http::HeaderValue::from_str(key.expose()).ok()
}

/// `{"type":"error","error":{"type","message"}}`.
pub fn error_body(err: &GatewayError) -> Value {
    json!({
        "type": "error",
        "error": { "type": error_type(err.status()), "message": err.to_string() }
    })
}

/// An error in a stream that already started: an `event: error`.
pub const SSE_ERROR_FRAME: (&[u8], &[u8]) = (b"event: error\ndata: ", b"\n\n");

fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 | 405 => "not_found_error",
        413 | 431 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The `usage` object of a message, `message_start` or `message_delta`. Input, cache
/// reads and cache writes are separate addends already.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
}

quick!(Usage {
    input_tokens: b"input_tokens" => count,
    output_tokens: b"output_tokens" => count,
    cache_read_input_tokens: b"cache_read_input_tokens" => count,
    cache_creation_input_tokens: b"cache_creation_input_tokens" => count,
});

impl NativeUsage for Usage {
    fn from_value(v: &Value) -> Usage {
        let n = |key: &str| count(v, &[key]);
        Usage {
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_read_input_tokens: n("cache_read_input_tokens"),
            cache_creation_input_tokens: n("cache_creation_input_tokens"),
        }
    }

    fn reported(&self) -> Option<Reported> {
        let r = Reported {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_write: self.cache_creation_input_tokens,
            reasoning: None,
            complete: false,
        };
        (r.input.is_some() || r.output.is_some()).then_some(r)
    }
}

/// Usage in (the tail of) a whole JSON response body.
pub fn usage_in_body(tail: &[u8]) -> Option<Reported> {
    last_usage_of::<Usage>(tail, b"usage")?.reported()
}

/// A stream event, for its usage: what [`usage_in_event`] reads, by a typed parse.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    usage: Member<Usage>,
    message: Member<MessageUsage>,
}

/// `message_start` holds its usage in `message`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
struct MessageUsage {
    usage: Member<Usage>,
}

quick!(Event<'q> {
    kind: b"type" => text,
    usage: b"usage" => member,
    message: b"message" => member,
});

quick!(MessageUsage {
    usage: b"usage" => member,
});

impl Event<'_> {
    /// What [`usage_in_event`] reports for the same event: `usage` if the event has the
    /// member (of any value), else `message.usage`.
    pub fn reported(self) -> Option<Reported> {
        let u = match self.usage {
            Member::Present(u) => u,
            Member::Absent => match self.message.object()?.usage {
                Member::Present(u) => u,
                Member::Absent => return None,
            },
        };
        let last = self.kind.as_deref() == Some("message_delta");
        u.unwrap_or_default().reported().map(|r| Reported {
            complete: last,
            ..r
        })
    }
}

/// Usage in one stream event: `message_start` carries the input side in
/// `message.usage`, `message_delta` the final output count (so it completes the report).
pub fn usage_in_event(event: &Value) -> Option<Reported> {
    let u = event
        .get("usage")
        .or_else(|| event.get("message").and_then(|m| m.get("usage")));
    let last = event.get("type").and_then(Value::as_str) == Some("message_delta");
    Usage::from_value(u?).reported().map(|r| Reported {
        complete: last,
        ..r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_pages_forward_and_back() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let page = |q: &str| {
            let v = model_list(&ids, Some(q));
            let got: Vec<String> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            (got.join(""), v["has_more"].as_bool().unwrap())
        };
        assert_eq!(page(""), ("abcde".into(), false));
        assert_eq!(page("limit=2"), ("ab".into(), true));
        assert_eq!(page("limit=2&after_id=b"), ("cd".into(), true));
        assert_eq!(page("limit=2&after_id=d"), ("e".into(), false));
        assert_eq!(page("limit=2&before_id=e"), ("cd".into(), true));
        assert_eq!(page("limit=2&before_id=b"), ("a".into(), false));
        assert_eq!(
            page("after_id=bb"),
            ("cde".into(), false),
            "an id no longer listed"
        );
        assert_eq!(page("limit=0"), ("abcde".into(), false));
        let v = model_list(&ids, Some("after_id=e"));
        assert_eq!(
            (v["first_id"].is_null(), v["last_id"].is_null()),
            (true, true)
        );
        let v = model_list(&ids, None);
        assert_eq!(
            (v["first_id"].as_str(), v["last_id"].as_str()),
            (Some("a"), Some("e"))
        );
    }

    /// The typed parse and the lenient one read the same fields.
    #[test]
    fn typed_and_lenient_reads_agree() {
        let docs: &[&str] = &[
            r#"{"input_tokens":9,"cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":1,"service_tier":"standard","server_tool_use":{"web_search_requests":0}}"#,
            r#"{"output_tokens":57}"#,
            r#"{ }"#,
        ];
        for doc in docs {
            let typed: Usage = serde_json::from_str(doc).unwrap();
            let value: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(typed, Usage::from_value(&value), "{doc}");
        }
    }

    #[test]
    fn message_start_then_message_delta() {
        let start: Value = serde_json::from_str(r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"cache_creation_input_tokens":300,"cache_read_input_tokens":2000,"output_tokens":1}}}"#).unwrap();
        let r = usage_in_event(&start).unwrap();
        assert_eq!(
            (r.input, r.cache_read, r.cache_write, r.complete),
            (Some(25), Some(2000), Some(300), false)
        );
        let delta: Value = serde_json::from_str(
            r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":57}}"#,
        )
        .unwrap();
        let r = usage_in_event(&delta).unwrap();
        assert_eq!((r.input, r.output, r.complete), (None, Some(57), true));
        let ping: Value = serde_json::from_str(r#"{"type":"ping","usage":{}}"#).unwrap();
        assert_eq!(usage_in_event(&ping), None);
    }
}
