//! Shared by the translation tests: fixtures, a driver that feeds a recorded upstream
//! stream to a translator in given chunks, parsers of what each client dialect
//! receives (as its SDK would accumulate it), and the invariant checker of the
//! Anthropic event order that Claude Code relies on.

//!
//! Not every test file uses every helper; a panic in a helper is a failed test, as in
//! the tests themselves (clippy's `allow-*-in-tests` does not see helpers).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::Value;
use tollgate_filters::translate::response::{Exchange, ResponseTranslator};
use tollgate_filters::translate::{Pair, Wire};

/// A fixture of the translation tests (`filters/tests/fixtures/translate/...`) or, with
/// a `root:` prefix, one of the repository's mock-upstream fixtures (`tests/fixtures`).
pub fn fixture(name: &str) -> Vec<u8> {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = match name.strip_prefix("root:") {
        Some(rest) => base.join("../tests/fixtures").join(rest),
        None => base.join("tests/fixtures/translate").join(name),
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every client wire.
pub const CLIENTS: [Wire; 4] = [Wire::Chat, Wire::Responses, Wire::Messages, Wire::Gemini];

/// The recorded upstream streams: (upstream wire, fixture, ends cleanly, JSON-array form).
pub const STREAMS: &[(Wire, &str, bool, bool)] = &[
    (Wire::Chat, "root:openai/chat.sse", true, false),
    (Wire::Chat, "openai/parallel_tools.sse", true, false),
    (Wire::Chat, "openai/interleaved_tools.sse", true, false),
    (Wire::Chat, "openai/reasoning.sse", true, false),
    (Wire::Chat, "openai/truncated.sse", false, false),
    (Wire::Messages, "root:anthropic/messages.sse", true, false),
    (Wire::Messages, "anthropic/thinking_tools.sse", true, false),
    (
        Wire::Messages,
        "anthropic/overloaded_mid_stream.sse",
        false,
        false,
    ),
    (Wire::Gemini, "root:gemini/stream.sse", true, false),
    (Wire::Gemini, "gemini/thinking_tools.sse", true, false),
    (Wire::Gemini, "gemini/thinking_tools_array.json", true, true),
    (Wire::Gemini, "gemini/truncated.sse", false, false),
];

/// The recorded whole (non-stream) upstream answers: (upstream wire, fixture).
pub const ANSWERS: &[(Wire, &str)] = &[
    (Wire::Chat, "root:openai/chat.json"),
    (Wire::Chat, "openai/parallel_tools.json"),
    (Wire::Messages, "root:anthropic/messages.json"),
    (Wire::Messages, "root:anthropic/tool_use.json"),
    (Wire::Messages, "anthropic/thinking_tools.json"),
    (Wire::Gemini, "root:gemini/generate.json"),
    (Wire::Gemini, "gemini/thinking_tools.json"),
];

/// The recorded client requests: (client wire, fixture).
pub const REQUESTS: &[(Wire, &str)] = &[
    (Wire::Chat, "requests/chat.json"),
    (Wire::Messages, "requests/messages.json"),
    (Wire::Gemini, "requests/gemini.json"),
    (Wire::Responses, "requests/responses.json"),
];

/// The response side of a request from `client` to `upstream`.
pub fn exchange(client: Wire, upstream: Wire, stream: bool) -> Exchange {
    Exchange {
        pair: Pair { client, upstream },
        stream,
        include_usage: true,
        gemini_sse: true,
        model: "client-model".into(),
        input_estimate: 100,
        names: Vec::new(),
        namespaces: Vec::new(),
        echo: r#""instructions":null,"tools":[],"store":false"#.into(),
        reasoning_content: true,
        now: 1_750_000_000,
    }
}

/// Feeds `body` to a translator in chunks cut at `cuts` (sorted offsets), returning the
/// client's bytes.
pub fn run(ex: &Exchange, body: &[u8], cuts: &[usize], array: bool) -> Vec<u8> {
    let mut t = ResponseTranslator::new(ex.clone());
    let ct = if array {
        "application/json"
    } else {
        "text/event-stream"
    };
    let head = t.head(200, Some(ct));
    assert!(!head.error);
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().filter(|&&c| c > 0 && c < body.len()) {
        if c > at {
            t.body(&body[at..c], false, &mut out);
            at = c;
        }
    }
    t.body(&body[at..], true, &mut out);
    out
}

/// Server-sent events as (event name, JSON data or the raw text as a string).
pub fn sse(bytes: &[u8]) -> Vec<(String, Value)> {
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    let mut out = Vec::new();
    for frame in text.split("\n\n").flat_map(|f| f.split("\r\n\r\n")) {
        let mut event = String::new();
        let mut data = String::new();
        for line in frame.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if data.is_empty() {
            continue;
        }
        let v = serde_json::from_str(&data).unwrap_or(Value::String(data));
        out.push((event, v));
    }
    out
}

/// Checks every ordering rule of TRANSLATION_NOTES 4.3 on an Anthropic client stream.
/// `clean`: the stream must end with `message_stop`; otherwise with an `error` event.
pub fn check_anthropic_order(events: &[(String, Value)], clean: bool) -> Result<(), String> {
    let mut open: Option<(u64, String)> = None;
    let mut next_index = 0u64;
    let mut last_delta_sig = false;
    let mut args = String::new();
    let mut saw_delta = false;
    for (i, (name, data)) in events.iter().enumerate() {
        let ty = data["type"].as_str().unwrap_or("");
        if name != ty {
            return Err(format!("event {i}: name {name} but type {ty}"));
        }
        if i == 0 {
            if ty != "message_start" {
                return Err(format!("first event is {ty}"));
            }
            let input = data["message"]["usage"]["input_tokens"]
                .as_u64()
                .unwrap_or(0)
                + data["message"]["usage"]["cache_read_input_tokens"]
                    .as_u64()
                    .unwrap_or(0);
            if input == 0 {
                return Err("message_start reports no input tokens".into());
            }
            continue;
        }
        if last_delta_sig && ty != "content_block_stop" {
            return Err(format!("event {i}: {ty} after a signature_delta"));
        }
        last_delta_sig = false;
        match ty {
            "message_start" => return Err(format!("event {i}: second message_start")),
            "ping" => {}
            "content_block_start" => {
                if let Some((idx, _)) = &open {
                    return Err(format!("event {i}: block {idx} still open"));
                }
                let idx = data["index"].as_u64().unwrap_or(u64::MAX);
                if idx != next_index {
                    return Err(format!("event {i}: index {idx}, expected {next_index}"));
                }
                let kind = data["content_block"]["type"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned();
                args.clear();
                open = Some((idx, kind));
            }
            "content_block_delta" => {
                let Some((idx, kind)) = &open else {
                    return Err(format!("event {i}: delta with no open block"));
                };
                if data["index"].as_u64() != Some(*idx) {
                    return Err(format!(
                        "event {i}: delta for {} while {idx} is open",
                        data["index"]
                    ));
                }
                let dt = data["delta"]["type"].as_str().unwrap_or("");
                let ok = matches!(
                    (kind.as_str(), dt),
                    ("text", "text_delta")
                        | ("thinking", "thinking_delta" | "signature_delta")
                        | ("tool_use", "input_json_delta")
                );
                if !ok {
                    return Err(format!("event {i}: {dt} in a {kind} block"));
                }
                last_delta_sig = dt == "signature_delta";
                if dt == "input_json_delta" {
                    args.push_str(data["delta"]["partial_json"].as_str().unwrap_or(""));
                }
            }
            "content_block_stop" => {
                let Some((idx, kind)) = open.take() else {
                    return Err(format!("event {i}: stop with no open block"));
                };
                if data["index"].as_u64() != Some(idx) {
                    return Err(format!("event {i}: stop for another block"));
                }
                if kind == "tool_use"
                    && !args.is_empty()
                    && serde_json::from_str::<Value>(&args).is_err()
                {
                    return Err(format!("block {idx}: arguments {args} are not JSON"));
                }
                next_index += 1;
            }
            "message_delta" => {
                if open.is_some() {
                    return Err(format!("event {i}: message_delta with a block open"));
                }
                saw_delta = true;
            }
            "message_stop" => {
                if !saw_delta || i != events.len() - 1 {
                    return Err(format!("event {i}: message_stop out of place"));
                }
            }
            "error" => {
                if clean || i != events.len() - 1 {
                    return Err(format!(
                        "event {i}: error event in a clean stream or not last"
                    ));
                }
            }
            other => return Err(format!("event {i}: unknown event {other}")),
        }
    }
    let last = events.last().map(|(n, _)| n.as_str());
    match (clean, last) {
        (true, Some("message_stop")) | (false, Some("error")) => Ok(()),
        (_, last) => Err(format!("stream ends with {last:?}")),
    }
}

/// An Anthropic stream accumulated as the SDK's `MessageStream` does: content blocks.
pub fn anthropic_blocks(events: &[(String, Value)]) -> Vec<Value> {
    let mut blocks: Vec<Value> = Vec::new();
    let mut args = String::new();
    for (_, d) in events {
        match d["type"].as_str() {
            Some("content_block_start") => {
                blocks.push(d["content_block"].clone());
                args.clear();
            }
            Some("content_block_delta") => {
                let b = blocks.last_mut().expect("open block");
                let delta = &d["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => append(&mut b["text"], &delta["text"]),
                    Some("thinking_delta") => append(&mut b["thinking"], &delta["thinking"]),
                    Some("signature_delta") => b["signature"] = delta["signature"].clone(),
                    Some("input_json_delta") => {
                        args.push_str(delta["partial_json"].as_str().unwrap_or(""))
                    }
                    _ => {}
                }
            }
            Some("content_block_stop") => {
                let b = blocks.last_mut().expect("block");
                if b["type"] == "tool_use" {
                    b["input"] = if args.is_empty() {
                        serde_json::json!({})
                    } else {
                        serde_json::from_str(&args).expect("args")
                    };
                }
            }
            _ => {}
        }
    }
    blocks
}

fn append(target: &mut Value, piece: &Value) {
    let mut s = target.as_str().unwrap_or("").to_owned();
    s.push_str(piece.as_str().unwrap_or(""));
    *target = Value::String(s);
}

/// An OpenAI chat stream accumulated: text, reasoning, tool calls by index (id, name,
/// arguments), finish reason, the usage chunk, and whether `[DONE]` came.
#[derive(Debug, Default, PartialEq)]
pub struct OpenAiStream {
    pub text: String,
    pub reasoning: String,
    pub calls: Vec<(String, String, String)>,
    pub finish: Option<String>,
    pub usage: Option<Value>,
    pub done: bool,
    pub error: Option<Value>,
}

pub fn openai_stream(events: &[(String, Value)]) -> OpenAiStream {
    let mut s = OpenAiStream::default();
    for (_, d) in events {
        if d == &Value::String("[DONE]".into()) {
            s.done = true;
            continue;
        }
        if d.get("error").is_some() {
            s.error = Some(d["error"].clone());
            continue;
        }
        if d["usage"].is_object() {
            s.usage = Some(d["usage"].clone());
        }
        for c in d["choices"].as_array().into_iter().flatten() {
            let delta = &c["delta"];
            s.text.push_str(delta["content"].as_str().unwrap_or(""));
            s.reasoning
                .push_str(delta["reasoning_content"].as_str().unwrap_or(""));
            for tc in delta["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().expect("index") as usize;
                if i == s.calls.len() {
                    s.calls.push(Default::default());
                }
                assert!(i < s.calls.len(), "tool call index {i} skips ahead");
                let call = &mut s.calls[i];
                call.0.push_str(tc["id"].as_str().unwrap_or(""));
                call.1
                    .push_str(tc["function"]["name"].as_str().unwrap_or(""));
                call.2
                    .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(f) = c["finish_reason"].as_str() {
                s.finish = Some(f.to_owned());
            }
        }
    }
    s
}

/// A Gemini client stream's chunks (SSE data or array elements).
pub fn gemini_chunks(bytes: &[u8], sse_form: bool) -> Vec<Value> {
    if sse_form {
        return sse(bytes).into_iter().map(|(_, v)| v).collect();
    }
    match serde_json::from_slice::<Value>(bytes).expect("a JSON array") {
        Value::Array(a) => a,
        other => panic!("not an array: {other}"),
    }
}

/// Every part of a Gemini stream, in order.
pub fn gemini_parts(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|p| p != &serde_json::json!({"text": ""}))
        .collect()
}

/// The items of a Responses stream (from `output_item.done`) and its last event.
pub fn responses_items(events: &[(String, Value)]) -> (Vec<Value>, Value) {
    let items = events
        .iter()
        .filter(|(n, _)| n == "response.output_item.done")
        .map(|(_, d)| d["item"].clone())
        .collect();
    (
        items,
        events.last().map(|(_, d)| d.clone()).unwrap_or_default(),
    )
}
