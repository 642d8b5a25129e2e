//! The behaviours a model name picks (the table in [`super`]'s documentation): reading
//! the words out of the name, and the rewrites of an answer that some of them ask for
//! (`usage-missing`, `big-stream`, `json-array`, `usage-null`).

use serde_json::Value;

use super::dialect::Endpoint;
use super::sse::{event_data, event_json};
use super::{BIG_STREAM_EVENTS, BIG_STREAM_TEXT_BYTES};

const WORDS: &[&str] = &[
    "hang",
    "slow-stream",
    "held-stream",
    "stall-stream",
    "cut-stream",
    "cut-mid-event",
    "big-stream",
    "usage-missing",
    "echo",
    "json-array",
    "usage-null",
];

/// The behaviour words in a model name, `error-NNN` first when there is one.
pub(super) fn words(model: &str) -> Vec<String> {
    let mut out: Vec<String> = WORDS
        .iter()
        .filter(|w| model.contains(**w))
        .map(|w| (*w).to_owned())
        .collect();
    if let Some(code) = error_status(model) {
        out.insert(0, format!("error-{code}"));
    }
    out
}

/// The digits right after `prefix` in the model name, if any.
fn number_after(model: &str, prefix: &str) -> Option<String> {
    let i = model.find(prefix)? + prefix.len();
    Some(
        model[i..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect(),
    )
}

/// `NNN` of the first `error-NNN` in the model name.
pub(super) fn error_status(model: &str) -> Option<u16> {
    let i = model.find("error-")?;
    let digits = model.get(i + 6..i + 9)?;
    digits.parse().ok().filter(|c| (100..600).contains(c))
}

/// `N` of `retry-after-N` in the model name: the 429's `retry-after` (default 1).
pub(super) fn retry_after_secs(model: &str) -> Option<u64> {
    number_after(model, "retry-after-")?.parse().ok()
}

/// Whether an `error-NNN` applies to a request with this credential: always, unless the
/// model says `for-key-<tag>` (letters and digits), then only when the credential
/// contains the tag.
pub(super) fn key_matches(model: &str, credential: &str) -> bool {
    let Some(i) = model.find("for-key-") else {
        return true;
    };
    let tag: String = model[i + 8..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    credential.contains(&tag)
}

/// Removes every usage field from a response object or stream payload: OpenAI's
/// `usage` (and a Responses stream's `response.usage`), Anthropic's `usage` (and
/// `message.usage` in `message_start`), Gemini's `usageMetadata`.
pub(super) fn remove_usage(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("usage");
        o.remove("usageMetadata");
        for inner in ["message", "response"] {
            if let Some(i) = o.get_mut(inner).and_then(Value::as_object_mut) {
                i.remove("usage");
            }
        }
    }
}

/// `usage-missing` for one SSE event: `None` drops it (the OpenAI usage chunk).
pub(super) fn event_without_usage(event: &[u8]) -> Option<Vec<u8>> {
    if super::openai::is_usage_chunk(event) {
        return None;
    }
    let Some(data) = event_data(event) else {
        return Some(event.to_vec());
    };
    let Ok(mut v) = serde_json::from_str::<Value>(&data) else {
        return Some(event.to_vec());
    };
    remove_usage(&mut v);
    let crlf = event.ends_with(b"\r\n\r\n");
    let eol = if crlf { "\r\n" } else { "\n" };
    let text = String::from_utf8_lossy(event);
    let mut out = String::new();
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.is_empty() || line.starts_with("data:") {
            continue;
        }
        out.push_str(line);
        out.push_str(eol);
    }
    out.push_str("data: ");
    out.push_str(&serde_json::to_string(&v).unwrap());
    out.push_str(eol);
    out.push_str(eol);
    Some(out.into_bytes())
}

/// The text of a content delta event for this endpoint, if the event is one.
fn delta_text(endpoint: Endpoint, event: &[u8]) -> Option<String> {
    let v = event_json(event)?;
    let text = endpoint.dialect.delta_text(endpoint.name, &v)?;
    text.as_str().filter(|t| !t.is_empty()).map(str::to_owned)
}

/// `big-stream`: the content deltas replaced by [`BIG_STREAM_EVENTS`] big ones built from
/// the first delta (only its text changes, byte for byte otherwise).
pub(super) fn big_stream(endpoint: Endpoint, events: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let first = events
        .iter()
        .position(|e| delta_text(endpoint, e).is_some());
    let last = events
        .iter()
        .rposition(|e| delta_text(endpoint, e).is_some());
    let (Some(first), Some(last)) = (first, last) else {
        return events;
    };
    let template = String::from_utf8_lossy(&events[first]).into_owned();
    let old = serde_json::to_string(&delta_text(endpoint, &events[first]).unwrap()).unwrap();
    let filler = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
        .repeat(BIG_STREAM_TEXT_BYTES / 56 + 1);
    let mut out: Vec<Vec<u8>> = events[..first].to_vec();
    for i in 0..BIG_STREAM_EVENTS {
        let mut text = format!("[{i:05}] ");
        text.push_str(&filler[..BIG_STREAM_TEXT_BYTES - text.len()]);
        let new = serde_json::to_string(&text).unwrap();
        out.push(template.replacen(&old, &new, 1).into_bytes());
    }
    out.extend(events[last + 1..].iter().cloned());
    out
}

/// `json-array`: a JSON array stream cut after each element's separator (`,\r\n`), one
/// piece each, as Gemini sends `:streamGenerateContent` without `alt=sse`.
pub(super) fn json_array_pieces(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while let Some(i) = crate::common::http::find(&raw[start..], b",\r\n") {
        pieces.push(raw[start..start + i + 3].to_vec());
        start += i + 3;
    }
    pieces.push(raw[start..].to_vec());
    pieces
}

/// `usage-null` for one SSE event: `,"usage":null` before the payload's closing brace,
/// as OpenAI does when usage was asked for, except on the usage chunk and `[DONE]`.
pub(super) fn with_usage_null(event: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(event);
    match text.rfind('}') {
        Some(i) if !super::openai::is_usage_chunk(event) => {
            format!("{},\"usage\":null{}", &text[..i], &text[i..]).into_bytes()
        }
        _ => event.to_vec(),
    }
}
