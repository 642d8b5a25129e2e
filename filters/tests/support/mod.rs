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
    (Wire::Chat, "openai/mistral_reasoning.sse", true, false),
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
    (Wire::Chat, "openai/mistral_reasoning.json"),
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
    (Wire::Responses, "requests/responses_freeform.json"),
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
        custom_tools: Vec::new(),
        tool_search: false,
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

/// The order of an Anthropic client stream that the SDKs (and Claude Code) rely on,
/// whatever the upstream sent: `message_start` first; blocks started one at a time with
/// the next index, their deltas of their own kind, stopped before the next one or the
/// `message_delta`; the stream ends with `message_stop` (after a `message_delta`) or an
/// `error` (which may be the only event, when the upstream failed before saying
/// anything).
pub fn check_anthropic_structure(events: &[(String, Value)]) -> Result<(), String> {
    let mut open: Option<(u64, String)> = None;
    let mut next = 0u64;
    let mut delta = false;
    for (i, (name, data)) in events.iter().enumerate() {
        let ty = data["type"].as_str().unwrap_or("");
        let last = i + 1 == events.len();
        match (i, ty) {
            _ if name != ty => return Err(format!("event {i}: name {name} but type {ty}")),
            (0, "message_start") => {}
            (_, "error") if last => {}
            (0, _) | (_, "message_start") => return Err(format!("event {i}: {ty}")),
            (_, "ping") => {}
            (_, "content_block_start") if open.is_none() && data["index"] == next => {
                let kind = data["content_block"]["type"].as_str().unwrap_or("");
                open = Some((next, kind.to_owned()));
            }
            (_, "content_block_delta") => {
                let Some((idx, kind)) = &open else {
                    return Err(format!("event {i}: delta with no open block"));
                };
                let fits = matches!(
                    (kind.as_str(), data["delta"]["type"].as_str().unwrap_or("")),
                    ("text", "text_delta")
                        | ("thinking", "thinking_delta" | "signature_delta")
                        | ("tool_use", "input_json_delta")
                );
                if data["index"] != *idx || !fits {
                    return Err(format!("event {i}: {data} in block {idx} ({kind})"));
                }
            }
            (_, "content_block_stop")
                if open.as_ref().is_some_and(|(idx, _)| data["index"] == *idx) =>
            {
                open = None;
                next += 1;
            }
            (_, "message_delta") if open.is_none() => delta = true,
            (_, "message_stop") if delta && last => {}
            _ => return Err(format!("event {i}: {ty} out of place ({data})")),
        }
    }
    match events.last().map(|(n, _)| n.as_str()) {
        Some("message_stop" | "error") => Ok(()),
        other => Err(format!("stream ends with {other:?}")),
    }
}

/// Checks every ordering rule of TRANSLATION_NOTES 4.3 on an Anthropic client stream
/// from a recorded upstream stream: the structure above, and `message_start` first with
/// real input counts, a `signature_delta` last in its block, a tool's arguments JSON.
/// `clean`: the stream must end with `message_stop`; otherwise with an `error` event.
pub fn check_anthropic_order(events: &[(String, Value)], clean: bool) -> Result<(), String> {
    check_anthropic_structure(events)?;
    let (_, start) = events.first().ok_or("no event")?;
    if start["type"] != "message_start" {
        return Err(format!("first event is {}", start["type"]));
    }
    let usage = &start["message"]["usage"];
    let input = usage["input_tokens"].as_u64().unwrap_or(0)
        + usage["cache_read_input_tokens"].as_u64().unwrap_or(0);
    if input == 0 {
        return Err("message_start reports no input tokens".into());
    }
    let mut args = String::new();
    for (i, pair) in events.windows(2).enumerate() {
        let (d, next) = (&pair[0].1, &pair[1].1);
        if d["delta"]["type"] == "signature_delta" && next["type"] != "content_block_stop" {
            return Err(format!(
                "event {}: {} after a signature_delta",
                i + 1,
                next["type"]
            ));
        }
    }
    for (_, d) in events {
        match d["type"].as_str() {
            Some("content_block_start") => args.clear(),
            Some("content_block_delta") if d["delta"]["type"] == "input_json_delta" => {
                args.push_str(d["delta"]["partial_json"].as_str().unwrap_or(""));
            }
            Some("content_block_stop") if !args.is_empty() => {
                if serde_json::from_str::<Value>(&args).is_err() {
                    return Err(format!(
                        "block {}: arguments {args} are not JSON",
                        d["index"]
                    ));
                }
                args.clear();
            }
            _ => {}
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
