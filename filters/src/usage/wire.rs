//! Where each provider puts usage on the wire, and how its fields fold into the disjoint
//! buckets of CONTRACT §5.

use serde_json::Value;

use super::scan::last_value_of;
use super::Reported;
use crate::upstream::ProviderKind;

fn n(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_u64)
}

/// OpenAI and OpenAI-compatible usage: Chat Completions / Completions / Embeddings
/// (`prompt_tokens`...), the Responses API (`input_tokens`...), DeepSeek's
/// `prompt_cache_hit_tokens`, xAI, OpenRouter and Ollama (same field names).
pub fn openai(u: &Value) -> Option<Reported> {
    let prompt = n(u, &["prompt_tokens"]).or_else(|| n(u, &["input_tokens"]))?;
    let output = n(u, &["completion_tokens"]).or_else(|| n(u, &["output_tokens"]));
    let cached = n(u, &["prompt_tokens_details", "cached_tokens"])
        .or_else(|| n(u, &["input_tokens_details", "cached_tokens"]))
        .or_else(|| n(u, &["prompt_cache_hit_tokens"]))
        .unwrap_or(0);
    let reasoning = n(u, &["completion_tokens_details", "reasoning_tokens"])
        .or_else(|| n(u, &["output_tokens_details", "reasoning_tokens"]));
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
pub fn anthropic(u: &Value) -> Option<Reported> {
    let r = Reported {
        input: n(u, &["input_tokens"]),
        output: n(u, &["output_tokens"]),
        cache_read: n(u, &["cache_read_input_tokens"]),
        cache_write: n(u, &["cache_creation_input_tokens"]),
        reasoning: None,
        complete: false,
    };
    (r.input.is_some() || r.output.is_some()).then_some(r)
}

/// Gemini `usageMetadata`.
pub fn gemini(u: &Value) -> Option<Reported> {
    let prompt = n(u, &["promptTokenCount"])?;
    let cached = n(u, &["cachedContentTokenCount"]).unwrap_or(0);
    let thoughts = n(u, &["thoughtsTokenCount"]).unwrap_or(0);
    let candidates = n(u, &["candidatesTokenCount"]).unwrap_or(0);
    Some(Reported {
        input: Some(prompt.saturating_sub(cached)),
        output: Some(candidates + thoughts),
        cache_read: Some(cached),
        cache_write: None,
        reasoning: Some(thoughts),
        complete: false,
    })
}

/// Whether a payload has a `"usage"` or `"usageMetadata"` key whose value is an object.
/// Most stream events carry none (or `"usage":null`), and this check keeps them from
/// being parsed at all.
fn has_usage_object(data: &[u8]) -> bool {
    let mut rest = data;
    while let Some(i) = rest.windows(6).position(|w| w == b"\"usage") {
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
            openai(u?).map(|r| Reported {
                complete: true,
                ..r
            })
        }
        ProviderKind::Anthropic => {
            let u = v
                .get("usage")
                .or_else(|| v.get("message").and_then(|m| m.get("usage")));
            let last = v.get("type").and_then(Value::as_str) == Some("message_delta");
            anthropic(u?).map(|r| Reported {
                complete: last,
                ..r
            })
        }
        ProviderKind::Gemini => {
            let finished = v
                .get("candidates")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| c.get("finishReason").is_some()));
            gemini(v.get("usageMetadata")?).map(|r| Reported {
                complete: finished,
                ..r
            })
        }
    }
}

/// Usage in (the tail of) a whole JSON response body.
pub fn usage_in_body(kind: ProviderKind, tail: &[u8]) -> Option<Reported> {
    match kind {
        ProviderKind::OpenAi => openai(&last_value_of(tail, b"usage")?),
        ProviderKind::Anthropic => anthropic(&last_value_of(tail, b"usage")?),
        ProviderKind::Gemini => gemini(&last_value_of(tail, b"usageMetadata")?),
    }
}
