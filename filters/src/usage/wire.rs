//! Where each provider puts usage on the wire, and how its fields fold into the disjoint
//! buckets of CONTRACT §5.
//!
//! A usage object is read into [`UsageFields`] by a typed parse that skips every other
//! key without building a tree (the per-request path); an object that the typed parse
//! refuses (a field of an unexpected type) is read leniently from a `serde_json::Value`
//! instead, so odd providers are metered exactly as before, only slower.

use serde::Deserialize;
use serde_json::Value;

use super::scan::{find_key_objects, value_at};
use super::Reported;
use crate::upstream::ProviderKind;

/// `{"cached_tokens": n}` and `{"reasoning_tokens": n}` detail objects.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Details {
    cached_tokens: Option<u64>,
    reasoning_tokens: Option<u64>,
}

/// Every usage field that any supported provider reports; absent ones are `None`.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct UsageFields {
    prompt_tokens: Option<u64>,
    input_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    output_tokens: Option<u64>,
    prompt_tokens_details: Option<Details>,
    input_tokens_details: Option<Details>,
    completion_tokens_details: Option<Details>,
    output_tokens_details: Option<Details>,
    prompt_cache_hit_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    #[serde(rename = "promptTokenCount")]
    prompt_token_count: Option<u64>,
    #[serde(rename = "cachedContentTokenCount")]
    cached_content_token_count: Option<u64>,
    #[serde(rename = "thoughtsTokenCount")]
    thoughts_token_count: Option<u64>,
    #[serde(rename = "candidatesTokenCount")]
    candidates_token_count: Option<u64>,
}

impl UsageFields {
    /// The fields of a parsed value, each read on its own: a field of another type is
    /// absent rather than spoiling the rest.
    pub fn from_value(v: &Value) -> UsageFields {
        let n = |path: &[&str]| {
            path.iter()
                .try_fold(v, |v, k| v.get(k))
                .and_then(Value::as_u64)
        };
        let details = |key: &str| {
            v.get(key).filter(|d| d.is_object()).map(|_| Details {
                cached_tokens: n(&[key, "cached_tokens"]),
                reasoning_tokens: n(&[key, "reasoning_tokens"]),
            })
        };
        UsageFields {
            prompt_tokens: n(&["prompt_tokens"]),
            input_tokens: n(&["input_tokens"]),
            completion_tokens: n(&["completion_tokens"]),
            output_tokens: n(&["output_tokens"]),
            prompt_tokens_details: details("prompt_tokens_details"),
            input_tokens_details: details("input_tokens_details"),
            completion_tokens_details: details("completion_tokens_details"),
            output_tokens_details: details("output_tokens_details"),
            prompt_cache_hit_tokens: n(&["prompt_cache_hit_tokens"]),
            cache_read_input_tokens: n(&["cache_read_input_tokens"]),
            cache_creation_input_tokens: n(&["cache_creation_input_tokens"]),
            prompt_token_count: n(&["promptTokenCount"]),
            cached_content_token_count: n(&["cachedContentTokenCount"]),
            thoughts_token_count: n(&["thoughtsTokenCount"]),
            candidates_token_count: n(&["candidatesTokenCount"]),
        }
    }
}

fn cached(d: &Option<Details>) -> Option<u64> {
    d.as_ref().and_then(|d| d.cached_tokens)
}

fn reasoning(d: &Option<Details>) -> Option<u64> {
    d.as_ref().and_then(|d| d.reasoning_tokens)
}

/// OpenAI and OpenAI-compatible usage: Chat Completions / Completions / Embeddings
/// (`prompt_tokens`...), the Responses API (`input_tokens`...), DeepSeek's
/// `prompt_cache_hit_tokens`, xAI, OpenRouter and Ollama (same field names).
pub fn openai(u: &UsageFields) -> Option<Reported> {
    let prompt = u.prompt_tokens.or(u.input_tokens)?;
    let output = u.completion_tokens.or(u.output_tokens);
    let cached = cached(&u.prompt_tokens_details)
        .or_else(|| cached(&u.input_tokens_details))
        .or(u.prompt_cache_hit_tokens)
        .unwrap_or(0);
    let reasoning =
        reasoning(&u.completion_tokens_details).or_else(|| reasoning(&u.output_tokens_details));
    Some(Reported {
        input: Some(prompt.saturating_sub(cached)),
        output: Some(output.unwrap_or(0)),
        cache_read: Some(cached),
        cache_write: None,
        reasoning,
        complete: false,
    })
}

/// Anthropic usage (message, message_start or message_delta).
pub fn anthropic(u: &UsageFields) -> Option<Reported> {
    let r = Reported {
        input: u.input_tokens,
        output: u.output_tokens,
        cache_read: u.cache_read_input_tokens,
        cache_write: u.cache_creation_input_tokens,
        reasoning: None,
        complete: false,
    };
    (r.input.is_some() || r.output.is_some()).then_some(r)
}

/// Gemini `usageMetadata`.
pub fn gemini(u: &UsageFields) -> Option<Reported> {
    let prompt = u.prompt_token_count?;
    let cached = u.cached_content_token_count.unwrap_or(0);
    let thoughts = u.thoughts_token_count.unwrap_or(0);
    let candidates = u.candidates_token_count.unwrap_or(0);
    Some(Reported {
        input: Some(prompt.saturating_sub(cached)),
        output: Some(candidates + thoughts),
        cache_read: Some(cached),
        cache_write: None,
        reasoning: Some(thoughts),
        complete: false,
    })
}

/// The usage object that follows the last `"key":` in `buf` (a value that is `null` or
/// does not parse is passed over for the one before).
pub fn last_usage_of(buf: &[u8], key: &[u8]) -> Option<UsageFields> {
    find_key_objects(buf, key).find_map(|pos| {
        let rest = buf[pos..].trim_ascii_start();
        // Only an object takes the typed parse: serde would also read an array into the
        // struct's fields by position.
        if rest.first() == Some(&b'{') {
            let mut typed = serde_json::Deserializer::from_slice(rest).into_iter::<UsageFields>();
            if let Some(Ok(fields)) = typed.next() {
                return Some(fields);
            }
        }
        value_at(rest).map(|v| UsageFields::from_value(&v))
    })
}

/// Whether a payload has a `"usage"` or `"usageMetadata"` key whose value is an object.
/// Most stream events carry none (or `"usage":null`), and this check keeps them from
/// being parsed at all.
fn has_usage_object(data: &[u8]) -> bool {
    static USAGE_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"usage"));
    let mut rest = data;
    while let Some(i) = USAGE_KEY.find(rest) {
        let mut after = &rest[i + 6..];
        if let Some(r) = after.strip_prefix(b"Metadata") {
            after = r;
        }
        if let Some(r) = after.strip_prefix(b"\"") {
            let r = r.trim_ascii_start();
            if let Some(r) = r.strip_prefix(b":") {
                if r.trim_ascii_start().first() == Some(&b'{') {
                    return true;
                }
            }
        }
        rest = &rest[i + 6..];
    }
    false
}

/// Usage carried by one SSE `data:` payload, if any. Payloads without the word "usage"
/// are never parsed.
pub fn usage_in_event(kind: ProviderKind, data: &[u8]) -> Option<Reported> {
    if !has_usage_object(data) {
        return None;
    }
    let v: Value = serde_json::from_slice(data).ok()?;
    match kind {
        ProviderKind::OpenAi => {
            let u = v.get("usage").filter(|u| u.is_object());
            let u = u.or_else(|| {
                v.get("response")
                    .and_then(|r| r.get("usage"))
                    .filter(|u| u.is_object())
            });
            openai(&UsageFields::from_value(u?)).map(|r| Reported {
                complete: true,
                ..r
            })
        }
        ProviderKind::Anthropic => {
            let u = v
                .get("usage")
                .or_else(|| v.get("message").and_then(|m| m.get("usage")));
            let last = v.get("type").and_then(Value::as_str) == Some("message_delta");
            anthropic(&UsageFields::from_value(u?)).map(|r| Reported {
                complete: last,
                ..r
            })
        }
        ProviderKind::Gemini => {
            let finished = v
                .get("candidates")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| c.get("finishReason").is_some()));
            gemini(&UsageFields::from_value(v.get("usageMetadata")?)).map(|r| Reported {
                complete: finished,
                ..r
            })
        }
    }
}

/// Usage in (the tail of) a whole JSON response body.
pub fn usage_in_body(kind: ProviderKind, tail: &[u8]) -> Option<Reported> {
    match kind {
        ProviderKind::OpenAi => openai(&last_usage_of(tail, b"usage")?),
        ProviderKind::Anthropic => anthropic(&last_usage_of(tail, b"usage")?),
        ProviderKind::Gemini => gemini(&last_usage_of(tail, b"usageMetadata")?),
    }
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
            r#"{"input_tokens":9,"cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":1,"service_tier":"standard","server_tool_use":{"web_search_requests":0}}"#,
            r#"{"promptTokenCount":8,"candidatesTokenCount":4,"thoughtsTokenCount":2,"cachedContentTokenCount":3,"promptTokensDetails":[{"modality":"TEXT","tokenCount":8}]}"#,
            r#"{"prompt_tokens":3,"prompt_cache_hit_tokens":2,"prompt_tokens_details":null}"#,
            r#"{ }"#,
        ];
        for doc in docs {
            let typed: UsageFields = serde_json::from_str(doc).unwrap();
            let value: Value = serde_json::from_str(doc).unwrap();
            assert_eq!(typed, UsageFields::from_value(&value), "{doc}");
        }
    }

    #[test]
    fn odd_values_fall_back_to_the_lenient_read() {
        // A float, a negative and a string where a count belongs: those fields are
        // absent, the others still count.
        let doc = br#"{"usage":{"prompt_tokens":10.0,"completion_tokens":4,"total_tokens":-1,"prompt_tokens_details":{"cached_tokens":"2"}}}"#;
        let f = last_usage_of(doc, b"usage").unwrap();
        assert_eq!((f.prompt_tokens, f.completion_tokens), (None, Some(4)));
        assert_eq!(cached(&f.prompt_tokens_details), None);
        // null passes over to the earlier object; an array is not read by position.
        let doc = br#"{"usage":{"prompt_tokens":6},"x":{"usage":null}}"#;
        assert_eq!(last_usage_of(doc, b"usage").unwrap().prompt_tokens, Some(6));
        let doc = br#"{"usage":[1,2,3]}"#;
        assert_eq!(last_usage_of(doc, b"usage"), Some(UsageFields::default()));
        assert_eq!(last_usage_of(br#"{"usage":null}"#, b"usage"), None);
        assert_eq!(
            last_usage_of(br#"{"usage":{"prompt_tokens":"#, b"usage"),
            None
        );
    }
}
