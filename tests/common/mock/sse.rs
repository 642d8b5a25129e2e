//! The recorded fixtures and the SSE reading shared by the mock and by tests that compare
//! what the gateway relayed with what the mock sent.

use serde_json::Value;

/// Where the fixture files live.
pub const FIXTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The bytes of `tests/fixtures/<rel>`; panics naming the file when it is missing.
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{FIXTURES_DIR}/{rel}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub(super) fn fixture_exists(rel: &str) -> bool {
    std::path::Path::new(&format!("{FIXTURES_DIR}/{rel}")).is_file()
}

/// Splits an SSE body into events, each with its terminating blank line (`\n\n`, or
/// `\r\n\r\n` as Gemini sends). A trailing piece with no terminator is the last element.
pub fn sse_events(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        let end = if body[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if body[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        };
        match end {
            Some(e) => {
                out.push(body[start..e].to_vec());
                start = e;
                i = e;
            }
            None => i += 1,
        }
    }
    if start < body.len() {
        out.push(body[start..].to_vec());
    }
    out
}

/// The lines of one SSE event, without their line endings.
fn event_lines(event: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(event)
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect()
}

/// The `data:` payload of one SSE event (several `data:` lines joined by `\n`), or
/// `None` when it has none.
pub fn event_data(event: &[u8]) -> Option<String> {
    let lines: Vec<String> = event_lines(event)
        .iter()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l).to_owned())
        .collect();
    if lines.is_empty() {
        None
    } else {
        Some(lines.join("\n"))
    }
}

/// The `event:` name of one SSE event, if it has one.
pub fn event_name(event: &[u8]) -> Option<String> {
    event_lines(event)
        .iter()
        .find_map(|l| l.strip_prefix("event:"))
        .map(|l| l.trim().to_owned())
}

/// The `data:` payload of one SSE event parsed as JSON, when it is JSON.
pub(super) fn event_json(event: &[u8]) -> Option<Value> {
    serde_json::from_str(&event_data(event)?).ok()
}

/// The SSE body without OpenAI's usage-only chunk: what the provider sends to a client
/// that did not ask for `include_usage`.
pub fn strip_usage_chunk(body: &[u8]) -> Vec<u8> {
    sse_events(body)
        .into_iter()
        .filter(|e| !super::openai::is_usage_chunk(e))
        .flatten()
        .collect()
}
